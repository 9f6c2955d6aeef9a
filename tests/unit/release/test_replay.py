"""Replay of captured traffic: the report on a seeded capture set, and the gate it drives.

Candidates are the shipped skl2onnx exports with their weights changed through the `onnx`
package (tests.unit.release.candidates). The golden report is regenerated with

    ONNXLAMBDA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/release/test_replay.py

and reviewed like code; the other tests check the figures independently of the replay code.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from moto import mock_aws

from onnxlambda.release.captured import read_recent_s3, select
from onnxlambda.release.replay import ReplayThresholds, replay
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda_cli import replay as replay_cli
from tests.conftest import MODELS
from tests.unit.release.candidates import (
    perturb_classifier,
    scale_tree_outputs,
    swap_classes,
    write_candidate,
)
from tests.unit.release.seeded import END, OLD_SHA, START, Capture, objects, seeded_capture, write_directory

GOLDEN = Path(__file__).parent / "golden" / "replay_penguins.json"


@pytest.fixture(scope="module")
def capture() -> Capture:
    return seeded_capture("penguins")


@pytest.fixture(scope="module")
def current() -> ModelRuntime:
    return ModelRuntime.load(MODELS / "penguins")


def window(capture: Capture) -> list[dict[str, Any]]:
    return select(capture.records, start=capture.start, end=capture.end)


def narrow_bill_length(manifest: dict[str, Any]) -> None:
    next(f for f in manifest["features"] if f["name"] == "bill_length_mm")["maximum"] = 55.0


def deterministic(report: dict[str, Any]) -> dict[str, Any]:
    """The report without timings, floats to 9 significant digits (platform last-bit noise)."""

    def norm(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    body = {k: v for k, v in report.items() if k != "latency"}
    body["gate"] = {
        **body["gate"],
        "checks": [c for c in body["gate"]["checks"] if "latency" not in c["check"]],
    }
    out: dict[str, Any] = norm(body)
    return out


def test_a_seeded_capture_set_gives_the_golden_report(
    capture: Capture, current: ModelRuntime, tmp_path: Path
) -> None:
    # GIVEN the seeded capture set and a candidate retrained (perturbed weights) with a narrower
    # bill_length_mm range
    candidate = write_candidate(
        "penguins",
        tmp_path / "candidate",
        version="1.1.0",
        graph_edit=perturb_classifier(0.3, seed=1),
        manifest_edit=narrow_bill_length,
    )
    # WHEN the window's traffic is replayed through it and the shipped model
    report = replay(window(capture), ModelRuntime.load(candidate), current)
    # THEN the report is the reviewed golden one (timings aside)
    if os.environ.get("ONNXLAMBDA_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(deterministic(report), indent=2, sort_keys=True) + "\n")
    assert deterministic(report) == json.loads(GOLDEN.read_text())
    # AND its latency section holds both models' single-row timings and their same-run ratio
    latency = report["latency"]
    assert latency["current"]["single_row_samples"] == latency["candidate"]["single_row_samples"] == 200
    assert latency["ratio_p50"] > 0


def test_the_report_adds_up(capture: Capture, current: ModelRuntime, tmp_path: Path) -> None:
    # GIVEN the golden report's inputs
    candidate_dir = write_candidate(
        "penguins", tmp_path / "c", version="1.1.0", graph_edit=perturb_classifier(0.3, seed=1)
    )
    records = window(capture)
    report = replay(records, ModelRuntime.load(candidate_dir), current)
    rows, comparison = report["rows"], report["comparison"]
    # THEN every record in the window is accounted for: redacted, refused by both, or compared
    assert rows["records"] == len(records) == 404
    assert rows["skipped_redacted"] == 3
    assert rows["current_refused"]["by_code"] == {"missing_feature": 4}  # the older version's rows
    assert rows["compared"] == rows["replayed"] - rows["current_refused"]["rows"] == 397
    # AND the flip matrix holds every compared row once; its diagonal is the agreement
    flips = comparison["flips"]
    assert sum(sum(r.values()) for r in flips.values()) == 397
    assert sum(flips[a][a] for a in flips) == comparison["agreed_rows"]
    assert comparison["agreement"] == pytest.approx(comparison["agreed_rows"] / 397)
    # AND the current model, re-run, answers its own captured rows as it did live
    assert report["reproduced"] == {"rows": 397, "same_answer": 397}
    # AND the candidate's labels are what onnxruntime itself says, run here without the project's code
    compared = [r for r in records if "redacted" not in r and r["model_sha256"] != OLD_SHA]
    direct = raw_onnxruntime_labels(candidate_dir, compared)
    assert [sum(flips[a][b] for a in flips) for b in comparison["labels"]] == [
        direct.count(label) for label in comparison["labels"]
    ]


def raw_onnxruntime_labels(model_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """Labels straight from an onnxruntime session: one [N, 1] tensor per feature, nulls as NaN or ""."""
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for tensor in session.get_inputs():
        column = [r["features"][tensor.name] for r in records]
        if tensor.type == "tensor(string)":
            feeds[tensor.name] = np.array([v if v is not None else "" for v in column], dtype=object).reshape(
                -1, 1
            )
        else:
            feeds[tensor.name] = np.array(
                [np.nan if v is None else v for v in column], dtype=np.float32
            ).reshape(-1, 1)
    labels = session.run(["label"], feeds)[0]
    return [str(x) for x in labels]


def test_the_same_model_passes(capture: Capture, current: ModelRuntime, tmp_path: Path) -> None:
    # GIVEN the shipped model re-released unchanged under a new version
    same = write_candidate("penguins", tmp_path / "same", version="1.0.1")
    report = replay(window(capture), ModelRuntime.load(same), current)
    # THEN full agreement, no output drift, nothing newly refused: the gate passes
    comparison = report["comparison"]
    assert comparison["agreement"] == 1.0
    assert comparison["output_drift"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert comparison["mean_probability_shift"] == 0.0
    assert report["rows"]["newly_refused"]["rows"] == 0
    assert report["gate"] == {**report["gate"], "passed": True, "failures": []}


def test_flipped_weights_fail_the_gate(capture: Capture, current: ModelRuntime, tmp_path: Path) -> None:
    # GIVEN a candidate whose Adelie and Gentoo weight rows were swapped in the graph
    flipped = write_candidate(
        "penguins", tmp_path / "flipped", version="1.0.1", graph_edit=swap_classes(0, 2)
    )
    report = replay(window(capture), ModelRuntime.load(flipped), current)
    # THEN the labels flip between exactly those classes and the gate fails on agreement and drift
    flips = report["comparison"]["flips"]
    assert flips["Adelie"]["Gentoo"] > 0
    assert flips["Gentoo"]["Adelie"] > 0
    assert report["comparison"]["agreement"] < 0.5
    assert report["gate"]["passed"] is False
    assert set(report["gate"]["failures"]) == {"label agreement", "output PSI"}


def test_rows_the_candidate_refuses_are_counted_by_code(
    capture: Capture, current: ModelRuntime, tmp_path: Path
) -> None:
    # GIVEN a candidate that no longer accepts island=Torgersen (same weights)
    def drop_torgersen(m: dict[str, Any]) -> None:
        next(f for f in m["features"] if f["name"] == "island")["categories"] = ["Biscoe", "Dream"]

    candidate = write_candidate("penguins", tmp_path / "c", version="2.0.0", manifest_edit=drop_torgersen)
    records = window(capture)
    report = replay(records, ModelRuntime.load(candidate), current)
    # THEN each served Torgersen row is counted as newly refused, with its code and field
    torgersen = sum(
        1
        for r in records
        if r["features"].get("island") == "Torgersen" and "redacted" not in r and r["model_sha256"] != OLD_SHA
    )
    assert torgersen > 0
    newly = report["rows"]["newly_refused"]
    assert newly == {
        "rows": torgersen,
        "by_code": {"unknown_category": torgersen},
        "by_field": {"island": {"unknown_category": torgersen}},
    }
    assert "refused by the candidate (share)" in report["gate"]["failures"]
    # AND the rows both accept agree fully (the weights did not change)
    assert report["comparison"]["agreement"] == 1.0


def test_regression_reports_the_distribution_of_differences(tmp_path: Path) -> None:
    # GIVEN diabetes traffic and a candidate whose tree leaves are all 10% larger
    capture = seeded_capture("diabetes", n=200, seed=3)
    current = ModelRuntime.load(MODELS / "diabetes")
    scaled = write_candidate(
        "diabetes", tmp_path / "scaled", version="1.0.1", graph_edit=scale_tree_outputs(1.1)
    )
    records = window(capture)
    report = replay(records, ModelRuntime.load(scaled), current)
    comparison = report["comparison"]
    # THEN every difference is a tenth of the current prediction (captured: what the model said live)
    served = [r for r in records if "redacted" not in r and r["model_sha256"] != OLD_SHA]
    expected = np.array([0.1 * r["prediction"]["disease_progression"] for r in served])
    d = comparison["differences"]
    assert comparison["rows"] == len(served)
    assert d["mean"] == pytest.approx(expected.mean(), rel=1e-5)
    assert d["quantiles"]["p50"] == pytest.approx(np.percentile(expected, 50), rel=1e-5)
    assert d["min"] == pytest.approx(expected.min(), rel=1e-5)
    assert sum(comparison["histogram"]["counts"]) == len(served)
    # AND the gate fails: p95 |difference| is above a tenth of the baseline's spread
    assert "p95 |difference|" in report["gate"]["failures"]
    assert d["abs_quantiles"]["p95"] > 0.1 * current.manifest.baselines.output.std_dev  # type: ignore[union-attr]
    # AND the HTML report shows the differences' quantiles and histogram
    page = replay_cli.render(report)
    assert "candidate - current: share of rows per difference" in page
    assert "Gate: FAILED: " in page
    # WHEN the same model is replayed THEN every difference is zero and the gate passes
    same = replay(
        records, ModelRuntime.load(write_candidate("diabetes", tmp_path / "same", version="1.0.1")), current
    )
    assert same["comparison"]["differences"]["mean_abs"] == 0.0
    assert same["gate"]["passed"] is True


def test_captured_answers_stand_in_for_the_current_model(capture: Capture, tmp_path: Path) -> None:
    # GIVEN only the candidate (the pre-traffic hook's view) and the rows the shipped model served
    shipped = json.loads((MODELS / "penguins" / "manifest.json").read_text())["sha256"]
    records = select(capture.records, start=START, end=END, model_sha256=shipped)
    flipped = ModelRuntime.load(
        write_candidate("penguins", tmp_path / "f", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    same = ModelRuntime.load(write_candidate("penguins", tmp_path / "s", version="1.0.1"))
    # WHEN each is replayed against what production answered
    bad, good = replay(records, flipped), replay(records, same)
    # THEN the same model agrees with every captured answer and the flipped one fails
    assert good["current"] == {"captured_answers_of": shipped}
    assert good["comparison"]["agreement"] == 1.0
    assert good["gate"]["passed"] is True
    assert bad["gate"]["passed"] is False
    assert good["latency"]["current"] is None


def test_too_few_rows_is_not_a_pass(current: ModelRuntime) -> None:
    report = replay([], current, current, ReplayThresholds(min_rows=50))
    assert report["gate"]["failures"] == ["rows compared"]


# -- the command: files, JSON, HTML, S3 -------------------------------------------------------


def test_command_on_a_capture_directory_writes_json_and_html(capture: Capture, tmp_path: Path) -> None:
    # GIVEN a copy of the capture bucket on disk and a flipped candidate
    directory = write_directory(capture.records, tmp_path / "capture")
    flipped = write_candidate(
        "penguins", tmp_path / "flipped", version="1.0.1", graph_edit=swap_classes(0, 2)
    )
    args = ["--candidate", str(flipped), "--current", str(MODELS / "penguins"), "--captured", str(directory)]
    window_args = ["--start", START.isoformat(), "--end", END.isoformat()]
    out = ["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]
    # WHEN replayed THEN the gate fails with exit code 2
    assert replay_cli.main(args + window_args + out) == replay_cli.EXIT_FAILED
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["source"]["kind"] == "directory"
    assert report["rows"]["records"] == 404
    page = (tmp_path / "r.html").read_text()
    assert "Gate: FAILED: label agreement, output PSI" in page
    assert "<svg" in page
    assert page.count("class='flip'") >= 2  # the off-diagonal cells that hold rows
    # WHEN the same model is replayed THEN exit code 0
    same = write_candidate("penguins", tmp_path / "same", version="1.0.1")
    assert (
        replay_cli.main(
            ["--candidate", str(same), "--current", str(MODELS / "penguins"), "--captured", str(directory)]
        )
        == 0
    )


def put_capture(s3: Any, bucket: str, records: list[dict[str, Any]], per_object: int = 25) -> int:
    s3.create_bucket(Bucket=bucket)
    blobs = objects(records, per_object=per_object)
    for key, body in blobs.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return len(blobs)


def test_command_on_a_moto_capture_bucket_reads_the_newest_rows_first(
    capture: Capture, tmp_path: Path
) -> None:
    same = write_candidate("penguins", tmp_path / "same", version="1.0.1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        total = put_capture(s3, "captures", capture.records)
        # WHEN the last two hours are replayed, at most 60 rows
        code = replay_cli.main(
            [
                "--candidate", str(same), "--current", str(MODELS / "penguins"),
                "--s3", "s3://captures/capture/", "--end", END.isoformat(), "--since-hours", "2",
                "--max-rows", "60", "--json", str(tmp_path / "r.json"),
            ],
            s3=s3,
        )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    # THEN it passes on exactly the 60 newest rows of the window, reading only the objects it needed
    assert code == 0
    assert report["rows"]["replayed"] + report["rows"]["skipped_redacted"] == 60
    assert report["source"]["objects_read"] < total
    newest = sorted(window(capture), key=lambda r: r["ts"])[-60:]
    assert report["rows"]["compared"] == sum(
        1 for r in newest if "redacted" not in r and r["model_sha256"] != OLD_SHA
    )


def test_read_recent_s3_lists_hour_prefixes_newest_first(capture: Capture) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        put_capture(s3, "captures", capture.records, per_object=10)
        records, read = read_recent_s3(s3, "captures", "capture/", START, END, max_rows=25)
        everything, read_all = read_recent_s3(s3, "captures", "capture/", START, END, max_rows=10_000)
    # THEN it read objects newest first and stopped as soon as it held 25 rows of the window
    lo, hi = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    held, needed = 0, 0
    for _, blob in sorted(objects(capture.records, per_object=10).items(), reverse=True):
        held += sum(1 for line in gzip.decompress(blob).splitlines() if lo <= json.loads(line)["ts"] < hi)
        needed += 1
        if held >= 25:
            break
    assert read == needed
    newest_ts = sorted(r["ts"] for r in capture.in_window())[-25:]
    assert min(r["ts"] for r in records.inferences) <= newest_ts[0]
    # AND without a bound it reads every object of the window's hours
    assert len(everything.inferences) >= len(capture.in_window())
    assert read_all > read


def test_gzip_and_plain_capture_files_read_alike(capture: Capture, tmp_path: Path) -> None:
    # GIVEN the same capture as plain JSON-lines files and as Firehose's gzip objects
    plain = tmp_path / "plain"
    plain.mkdir()
    for i, blob in enumerate(objects(capture.records).values()):
        (plain / f"{i}.jsonl").write_bytes(gzip.decompress(blob))
    zipped = write_directory(capture.records, tmp_path / "zipped")
    args = ["--candidate", str(MODELS / "penguins"), "--current", str(MODELS / "penguins")]
    # WHEN each is replayed THEN both pass with the same rows
    reports = []
    for name, directory in (("plain", plain), ("zipped", zipped)):
        out = tmp_path / f"{name}.json"
        assert replay_cli.main([*args, "--captured", str(directory), "--json", str(out)]) == 0
        reports.append(json.loads(out.read_text())["rows"])
    assert reports[0] == reports[1]
    assert reports[0]["records"] == len(capture.records)
