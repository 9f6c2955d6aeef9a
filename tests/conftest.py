"""Shared fixtures. The environment is set before any handler module is imported, the way
template.yaml's Globals set it on Lambda."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.exports import REFUSED, SERVED, Export

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
EVENTS = ROOT / "events"

os.environ.setdefault("ONNXLAMBDA_MODEL_DIR", str(MODELS / "penguins"))
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


@pytest.fixture(scope="session")
def real_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Export]:
    """A real export by case name (tests.exports), built once per session when first asked for."""

    @functools.cache
    def get(case: str) -> Export:
        return SERVED[case](tmp_path_factory.mktemp(case))

    return get


@pytest.fixture(scope="session")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A real export the importer refuses (tests.exports.REFUSED), built once per session."""

    @functools.cache
    def get(case: str) -> Path:
        return REFUSED[case](tmp_path_factory.mktemp(case))

    return get


@pytest.fixture(scope="session")
def imported(
    real_export: Callable[[str], Export], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """The model directory `onnxlambda import` makes of a real export (the command, run once)."""
    from onnxlambda_cli.importer import command

    @functools.cache
    def get(case: str) -> Path:
        export = real_export(case)
        out = tmp_path_factory.mktemp(f"{case}-imported") / export.name
        assert command.main(export.import_args(out)) == 0
        return out

    return get
