"""onnxlambda: serve an ONNX model on AWS Lambda with a manifest-driven contract.

Modules:
    manifest    the model contract (features, outputs, baselines, lineage), read from manifest.json
    errors      domain errors and the structured error body every caller sees
    validation  column-wise request validation driven by the manifest
    runtime     loading the model once (sha256-verified) and running onnxruntime
    service     orchestration: rows in, validated tensors, predictions out
    config      settings read from the environment
"""

__version__ = "0.1.0"
