"""Shared fixtures. The environment is set before any handler module is imported, the way
template.yaml's Globals set it on Lambda."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
EVENTS = ROOT / "events"

os.environ.setdefault("MODEL_DIR", str(MODELS / "penguins"))
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "onnxlambda")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "OnnxLambdaTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from the Lambda context object."""

    function_name: str = "onnxlambda-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:onnxlambda-api:live"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def penguins_dir() -> Path:
    return MODELS / "penguins"


@pytest.fixture(scope="session")
def diabetes_dir() -> Path:
    return MODELS / "diabetes"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def golden_rows(model_dir: Path) -> list[dict[str, Any]]:
    return [c["instance"] for c in json.loads((model_dir / "golden.json").read_text())["cases"]]
