"""onnxlambda: serve an ONNX model on AWS Lambda with a manifest-driven contract.

The subpackages are the architecture (handlers in functions/ stay thin over them):
    contract/    what callers and models agree on: the manifest, the error model, redaction
    serving/     the model runtime (sha256-verified onnxruntime session), validation, the service
    codecs/      one per protocol: /predict JSON, Open Inference Protocol (V2), feedback, fast JSON
    batch/       one S3 object end to end: file bytes, readers, scoring, multipart output, S3 client
    monitoring/  drift statistics, per-request metrics, capture, the monitor's window and detectors
    release/     the golden set and the pre-traffic gate, replay of captured traffic, the shadow
    settings.py  settings from the environment

Build-time code (the OpenAPI builder, release tooling, reports) lives in cli/onnxlambda_cli and
never ships in the Lambda layer.
"""

__version__ = "0.1.0"
