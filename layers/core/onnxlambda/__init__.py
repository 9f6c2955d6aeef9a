"""onnxlambda: serve an ONNX model on AWS Lambda with a manifest-driven contract.

Where things are:
    the contract     manifest (features, outputs, baselines, lineage), validation (column-wise
                     checks), errors (the one error body), redaction (fields never to leak),
                     openapi (the published document), golden (expected outputs)
    the runtime      runtime (sha256-verified onnxruntime session), service (load once, predict),
                     config (settings from the environment)
    transports       v2 (Open Inference Protocol), feedback (ground truth), jsoncodec (fast JSON),
                     tracing (a Tracer that costs nothing when off); the handlers in functions/
                     stay thin over these
    batch            batch (one S3 object end to end), batch_io (streaming readers/writers),
                     batch_s3 (the S3 client's retries and timeouts)
    monitoring       drift (bins and statistics, shared with batch), monitoring/ (per-request
                     metrics, capture, window reading, drift decisions, live performance)
    releases         golden_gate (the pre-traffic golden-set check against a new version)
"""

__version__ = "0.1.0"
