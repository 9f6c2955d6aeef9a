"""The pre-traffic hook's replay of recent capture (onnxlambda.release.replay_gate.replay_gate), against
a moto S3 capture bucket: the newest rows of the serving model, compared with what it answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from onnxlambda.release.replay_gate import ReplayGateSettings, replay_gate
from onnxlambda.serving.runtime import ModelRuntime
from tests.conftest import MODELS
from tests.unit.release.candidates import swap_classes, write_candidate
from tests.unit.release.seeded import objects, seeded_capture

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BUCKET = "capture-bucket"


def settings(**overrides: Any) -> ReplayGateSettings:
    return ReplayGateSettings(**{"rows": 300, "bucket": BUCKET, **overrides})


def bucket_with(records: list[dict[str, Any]]) -> Any:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for key, body in objects(records).items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return s3


@pytest.fixture
def recent() -> list[dict[str, Any]]:
    """Two hours of traffic served by the shipped model, ending an hour before NOW."""
    return seeded_capture("penguins", start=NOW - timedelta(hours=3)).records


def test_the_same_model_passes_and_a_flipped_one_fails(recent: list[dict[str, Any]], tmp_path: Path) -> None:
    same = ModelRuntime.load(write_candidate("penguins", tmp_path / "same", version="1.0.1"))
    flipped = ModelRuntime.load(
        write_candidate("penguins", tmp_path / "flipped", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    with mock_aws():
        s3 = bucket_with(recent)
        good = replay_gate(s3, same, settings(), NOW)
        bad = replay_gate(s3, flipped, settings(), NOW)
    # THEN the newest 300 rows of the shipped model were compared with its captured answers
    shipped = ModelRuntime.load(MODELS / "penguins").manifest.sha256
    assert good.summary["reference_sha256"] == shipped
    assert good.summary["rows"] == 300
    assert (good.passed, good.problems, good.summary["agreement"]) == (True, [], 1.0)
    # AND the flipped weights fail on agreement and on output drift, each problem saying so
    assert bad.passed is False
    assert [p.split(": ")[1].split(" 0")[0] for p in bad.problems] == ["label agreement", "output PSI"]
    assert all(p.startswith("replay of ") for p in bad.problems)


def test_no_capture_yet_is_skipped_not_failed(tmp_path: Path, recent: list[dict[str, Any]]) -> None:
    flipped = ModelRuntime.load(
        write_candidate("penguins", tmp_path / "f", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    with mock_aws():
        s3 = bucket_with([])
        empty = replay_gate(s3, flipped, settings(), NOW)
    assert empty.passed is True
    assert empty.summary["skipped"] == "0 captured rows (< 20): nothing to replay yet"
    # AND capture older than the lookback counts as none
    with mock_aws():
        s3 = bucket_with(recent)
        old = replay_gate(s3, flipped, settings(lookback=timedelta(minutes=30)), NOW)
    assert old.passed is True
    assert "skipped" in old.summary


def test_rows_served_by_the_candidate_itself_are_not_the_reference(
    recent: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN capture where the newest rows were answered by the candidate (a canary of it that ran before)
    candidate_dir = write_candidate(
        "penguins", tmp_path / "c", version="1.0.1", graph_edit=swap_classes(0, 2)
    )
    candidate = ModelRuntime.load(candidate_dir)
    for r in recent[-100:]:
        r["model_sha256"] = candidate.manifest.sha256
    with mock_aws():
        result = replay_gate(bucket_with(recent), candidate, settings(rows=1000), NOW)
    # THEN only the serving model's rows are the reference, and the flip is still caught
    assert result.summary["reference_sha256"] != candidate.manifest.sha256
    assert result.passed is False


def test_settings_from_the_hook_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ReplayGateSettings.from_env().enabled is False  # off by default
    monkeypatch.setenv("ONNXLAMBDA_REPLAY_ROWS", "500")
    assert ReplayGateSettings.from_env().enabled is False  # no bucket, no replay
    monkeypatch.setenv("ONNXLAMBDA_CAPTURE_BUCKET", BUCKET)
    monkeypatch.setenv("ONNXLAMBDA_REPLAY_LOOKBACK_HOURS", "6")
    monkeypatch.setenv("ONNXLAMBDA_REPLAY_MIN_AGREEMENT", "0.9")
    s = ReplayGateSettings.from_env()
    assert (s.enabled, s.rows, s.lookback, s.thresholds.min_agreement) == (True, 500, timedelta(hours=6), 0.9)
