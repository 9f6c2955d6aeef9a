"""The environment the in-process benchmarks import the API handler with (bench.monitoring_overhead,
bench.shadow_overhead): template.yaml's Globals as on Lambda, the shipped penguins model, no
tracing. Call `set_environment()` before importing functions.api; a variable already set wins.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def set_environment() -> None:
    os.environ.setdefault("ONNXLAMBDA_MODEL_DIR", str(ROOT / "models" / "penguins"))
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "onnxlambda")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "OnnxLambdaBench")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


__all__ = ["ROOT", "set_environment"]
