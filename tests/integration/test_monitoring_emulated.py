"""Capture on the real runtime: the built API function, run under the Lambda emulator with
capture on, prints lines that the monitor's own reader and evaluation accept."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.rie import BuiltFunction, EmulatedFunction
from onnxlambda.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, evaluate
from onnxlambda.monitoring.window import Records
from tests.conftest import MODELS, load_event


@pytest.fixture(scope="module")
def capturing_api(api_function: BuiltFunction) -> Iterator[EmulatedFunction]:
    with EmulatedFunction(api_function, extra_env={"CAPTURE_SAMPLE_RATE": "1"}) as emulator:
        yield emulator


def json_lines(log: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in log:
        start = line.find("{")
        if start < 0:
            continue
        try:
            parsed = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(parsed, dict):
            out.append(parsed)
    return out


def test_captured_lines_from_the_built_function_feed_the_monitor(capturing_api: EmulatedFunction) -> None:
    # GIVEN the built API function with every row captured
    predicted = capturing_api.invoke(load_event("api_predict_batch"))
    assert predicted["statusCode"] == 200
    first = json.loads(predicted["body"])["predictions"][0]
    feedback = load_event("api_feedback")
    feedback["body"] = json.dumps({"inference_id": first["inference_id"], "actual": first["label"]})
    # WHEN it scores a batch and receives feedback for the first row
    assert capturing_api.invoke(feedback)["statusCode"] == 202
    capturing_api.wait_for_report(2)
    time.sleep(0.2)  # the log pump runs in a thread
    lines = json_lines(capturing_api.log)
    # THEN its stdout holds one capture line per row and one feedback line
    inferences = [x for x in lines if x.get("record_type") == "inference"]
    feedbacks = [x for x in lines if x.get("record_type") == "feedback"]
    assert len(inferences) == 10
    assert [f["inference_id"] for f in feedbacks] == [first["inference_id"]]
    assert any(x.get("CapturedRows") == [10.0] for x in lines if "_aws" in x)
    # AND the monitor's evaluation reads exactly those lines
    records = Records()
    records.add_lines("\n".join(json.dumps(x) for x in inferences + feedbacks).encode())
    now = datetime.now(UTC)
    settings = MonitorSettings(min_samples=5, min_feedback=1)
    result = evaluate(
        load_manifest(MODELS / "penguins"),
        records,
        now - timedelta(hours=1),
        now + timedelta(minutes=1),
        settings,
    )
    assert result.metrics["MonitorSamples"] == ("Count", 10.0)
    assert result.metrics["LiveSamples"] == ("Count", 1.0)
    assert result.metrics["Live_accuracy"] == ("None", 1.0)
    assert "DriftedFeatures" in result.metrics
