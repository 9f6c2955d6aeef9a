"""onnxlambda's command line: everything that runs on a developer's machine or in CI, never in Lambda.

    onnxlambda openapi       build (or --check) each model's OpenAPI document
    onnxlambda release       status | rollback | stamp (make build) | preflight (make deploy)
    onnxlambda changelog     a CHANGELOG entry from two manifests
    onnxlambda drift-report  an HTML drift report from captured traffic or a batch summary

The runtime package (layers/core/onnxlambda) is what ships in the Lambda layer; this package imports
it, never the other way round.
"""
