"""The monitor function end to end against moto: captured data and feedback in S3 in, drift and
live-performance metrics (EMF on stdout) and a stored summary out."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.monitor import app as monitor
from onnxlambda.contract.manifest import Manifest
from onnxlambda.monitoring.monitor import MonitorSettings
from tests.conftest import FakeLambdaContext, load_event
from tests.unit.capture_data import feedback_records, inference_records, jsonl

BUCKET = "capture-bucket"
# events/monitor_schedule.json is due at 10:20; with the 20-minute delivery delay the window is 09:00-10:00.
WINDOW_START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LABELS = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        previous_settings, monitor._s3 = monitor.settings, None
        monitor.settings = dataclasses.replace(MonitorSettings.from_env(), bucket=BUCKET)
        yield client
        monitor.settings, monitor._s3 = previous_settings, None


def put(s3: Any, key: str, body: bytes, *, gz: bool = False) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body) if gz else body)


def run_monitor(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    result = monitor.lambda_handler(
        load_event("monitor_schedule"), FakeLambdaContext(function_name="monitor")
    )
    blobs = []
    for line in capsys.readouterr().out.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "_aws" in parsed:
            blobs.append(parsed)
    values: dict[str, Any] = {}
    for blob in blobs:
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            v = blob[metric["Name"]]
            values[metric["Name"]] = v[0] if isinstance(v, list) else v
    return result, values


def test_a_window_like_the_baseline_shows_no_drift_and_reports_live_accuracy(
    s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest: Manifest = monitor.manifest
    # GIVEN 400 captured rows from the baseline distributions (two Firehose objects, one gzip)
    rows = inference_records(manifest, 400, WINDOW_START + timedelta(minutes=10), seed=1)
    put(s3, "capture/2026/11/27/09/part-1", jsonl(rows[:200]), gz=True)
    put(s3, "capture/2026/11/27/10/part-2", jsonl(rows[200:]))
    # AND rows of an older model version and rows outside the window, which must be ignored
    old = inference_records(manifest, 50, WINDOW_START + timedelta(minutes=5), seed=2, version="0.9.0")
    late = inference_records(manifest, 50, WINDOW_START + timedelta(minutes=61), seed=3, prefix="late")
    put(s3, "capture/2026/11/27/10/part-3", jsonl(old + late))
    # AND feedback for 100 of them arriving in the window, 95% matching the prediction, plus
    # feedback for rows captured 5 hours earlier (joined through the label lookback)
    early = inference_records(manifest, 20, WINDOW_START - timedelta(hours=5), seed=4, prefix="early")
    put(s3, "capture/2026/11/27/04/part-0", jsonl(early))
    feedback = feedback_records(rows[:100], WINDOW_START + timedelta(minutes=40), 0.95, LABELS)
    feedback += feedback_records(early, WINDOW_START + timedelta(minutes=41), 1.0, LABELS)
    put(s3, "capture/2026/11/27/09/part-4", jsonl(feedback))

    # WHEN the scheduled monitor runs
    result, metrics = run_monitor(capsys)

    # THEN it judged exactly the window's rows of this model version
    assert result["samples"] == 400
    assert metrics["MonitorSamples"] == 400
    # AND found no drift in any feature or in the output
    assert metrics["DriftedFeatures"] == 0
    assert metrics["OutputDrift"] == 0
    for f in manifest.feature_names:
        assert 0 <= metrics[f"PSI_{f}"] < 0.2
        assert 0 <= metrics[f"JSDistance_{f}"] < 0.2
    assert {"LInf_island", "LInf_sex", "LInf_output"} <= set(metrics)
    assert sum(metrics[f"ClassShare_{x}"] for x in LABELS) == pytest.approx(1.0)
    # AND live accuracy over the 120 joined rows: 95 + 20 right
    assert metrics["LiveSamples"] == 120
    assert metrics["Live_accuracy"] == pytest.approx(115 / 120)
    assert metrics["PerformanceRatio"] == pytest.approx((115 / 120) / manifest.metric("accuracy").value)
    # AND the summary the drift report renders is stored next to the capture
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=result["summary_key"])["Body"].read())
    assert result["summary_key"] == "monitor/2026/11/27/1000.json"
    assert stored["window"] == {"start": "2026-11-27T09:00:00+00:00", "end": "2026-11-27T10:00:00+00:00"}
    assert stored["other_versions"] == 50
    assert set(stored["features"]) == set(manifest.feature_names)


def test_shifted_inputs_and_a_collapsed_output_are_detected(
    s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest: Manifest = monitor.manifest
    # GIVEN a window where bill length grew by 10 mm and every prediction is Gentoo
    rows = inference_records(
        manifest,
        300,
        WINDOW_START + timedelta(minutes=30),
        seed=5,
        shift={"bill_length_mm": 10.0},
        label="Gentoo",
    )
    put(s3, "capture/2026/11/27/09/part-1", jsonl(rows))
    # AND feedback saying only half of them were right
    put(
        s3,
        "capture/2026/11/27/10/fb",
        jsonl(feedback_records(rows[:80], WINDOW_START + timedelta(minutes=50), 0.5, LABELS)),
    )
    result, metrics = run_monitor(capsys)
    # THEN the shifted feature, and only it, drifts; the output drifts; accuracy halves
    assert result["drifted_features"] == ["bill_length_mm"]
    assert metrics["DriftedFeatures"] == 1
    assert metrics["OutputDrift"] == 1
    assert metrics["ClassShare_Gentoo"] == 1.0
    assert metrics["Live_accuracy"] == pytest.approx(0.5)
    assert metrics["PerformanceRatio"] < 0.9  # below the template's default alarm threshold


def test_a_quiet_window_is_gated(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    manifest: Manifest = monitor.manifest
    # GIVEN fewer captured rows than ONNXLAMBDA_MIN_SAMPLES, all heavily shifted
    rows = inference_records(manifest, 30, WINDOW_START, seed=6, shift={"body_mass_g": 3000.0})
    put(s3, "capture/2026/11/27/09/part-1", jsonl(rows))
    result, metrics = run_monitor(capsys)
    # THEN the sample count is reported but no drift metric is emitted for alarms to act on
    assert metrics["MonitorSamples"] == 30
    assert "DriftedFeatures" not in metrics
    assert "PSI_body_mass_g" not in metrics
    assert "PerformanceRatio" not in metrics  # no feedback at all
    assert result["drifted_features"] == []
