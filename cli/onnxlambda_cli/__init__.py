"""onnxlambda's command line: everything that runs on a developer's machine or in CI, never in Lambda.

    __main__.py        `onnxlambda <command>`: the command table (`onnxlambda --help`)
    importer/          `onnxlambda import`: a user's export and reference data -> models/<name>
    openapi/           `onnxlambda openapi`: build (or --check) each model's OpenAPI document
    release/           `onnxlambda release`: status | rollback | stamp (make build) | preflight (make deploy)
    stamp.py           the release stamp of a `sam build` output (`onnxlambda release stamp`)
    contract_diff/     two contracts' differences and the bump they need (`onnxlambda diff`)
    diff.py            `onnxlambda diff`: files, directories or a deployed version, --require-bump
    replay.py          `onnxlambda replay`: captured traffic through a candidate, JSON + HTML, a gate
    drift_report.py    `onnxlambda drift-report`: an HTML drift report
    changelog.py       `onnxlambda changelog`: a CHANGELOG entry from two manifests
    check.py           `onnxlambda check`: a model directory loads and reproduces its golden set
    settings_reference.py  `onnxlambda settings`: docs/reference/settings.md from the catalogue
    cloudformation.py  template.yaml read the way CloudFormation reads it
    charts.py          the HTML reports' SVG charts

The runtime package (layers/core/onnxlambda) is what ships in the Lambda layer; this package imports
it, never the other way round.
"""
