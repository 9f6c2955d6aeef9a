"""Capture on the real runtime: the built API function, run under the Lambda emulator with
capture on, prints lines that the monitor's own reader and evaluation accept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.motoserver import function_env, moto_s3
from devtools.rie import BuiltFunction, EmulatedFunction
from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, evaluate
from onnxlambda.monitoring.window import Records
from tests.conftest import MODELS, load_event


@pytest.fixture(scope="module")
def capturing_api(api_function: BuiltFunction) -> Iterator[EmulatedFunction]:
    with EmulatedFunction(api_function, extra_env={"ONNXLAMBDA_CAPTURE_SAMPLE_RATE": "1"}) as emulator:
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


def wait_for_lines(
    emulator: EmulatedFunction,
    start: int,
    keep: Callable[[dict[str, Any]], bool],
    count: int,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """The JSON lines after log index `start` that `keep` selects, once `count` have arrived (the
    log pump runs in a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in json_lines(emulator.log[start:]) if keep(x)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_captured_lines_from_the_built_function_feed_the_monitor(capturing_api: EmulatedFunction) -> None:
    # GIVEN the built API function with every row captured
    predicted = capturing_api.invoke(load_event("api_predict_batch"))
    assert predicted["statusCode"] == 200
    first = json.loads(predicted["body"])["predictions"][0]
    feedback = load_event("api_feedback")
    feedback["body"] = json.dumps({"inference_id": first["inference_id"], "actual": first["label"]})
    # WHEN it scores a batch and receives feedback for the first row
    assert capturing_api.invoke(feedback)["statusCode"] == 202
    wait_for_lines(capturing_api, 0, lambda x: x.get("record_type") == "feedback", 1)
    wait_for_lines(capturing_api, 0, lambda x: "CapturedRows" in x, 1)
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


@pytest.fixture(scope="module")
def s3_server() -> Iterator[tuple[str, Any]]:
    """moto in server mode on loopback: the emulated function reaches it over HTTP."""
    with moto_s3(BUCKET) as server:
        yield server


BUCKET = "onnxlambda-capture-test"


def test_the_built_monitor_reads_captured_lines_from_s3_and_emits_metrics(
    capturing_api: EmulatedFunction, build_dir: Path, s3_server: tuple[str, Any]
) -> None:
    endpoint, s3 = s3_server
    # GIVEN capture lines printed by the built API function, delivered to S3 as Firehose would
    before = len(capturing_api.log)
    event = load_event("api_predict_batch")
    event["requestContext"]["requestId"] = "monitor-it"
    assert capturing_api.invoke(event)["statusCode"] == 200
    lines = wait_for_lines(capturing_api, before, lambda x: x.get("record_type") == "inference", 10)
    assert len(lines) == 10
    now = datetime.now(UTC)
    s3.put_object(
        Bucket=BUCKET,
        Key=f"capture/{now:%Y/%m/%d/%H}/delivery-1",
        Body="".join(json.dumps(x) + "\n" for x in lines).encode(),
    )
    # WHEN the built monitor function runs under the emulator for the window holding them
    monitor = BuiltFunction.from_build("MonitorFunction", build_dir)
    env = function_env(endpoint, ONNXLAMBDA_CAPTURE_BUCKET=BUCKET, ONNXLAMBDA_MIN_SAMPLES="5")
    schedule = load_event("monitor_schedule")
    schedule["time"] = (now + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with EmulatedFunction(monitor, extra_env=env) as emulated_monitor:
        result = emulated_monitor.invoke(schedule)
        emitted = wait_for_lines(emulated_monitor, 0, lambda x: "MonitorSamples" in x, 1)
    # THEN it judged those rows, emitted the drift metrics and stored its summary
    assert result["samples"] == 10, result
    assert any(x.get("MonitorSamples") == [10.0] and "DriftedFeatures" in x for x in emitted)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=result["summary_key"])["Body"].read())
    assert summary["samples"] == 10
    assert set(summary["features"]) == set(load_manifest(MODELS / "penguins").feature_names)
