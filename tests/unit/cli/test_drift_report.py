"""`onnxlambda drift-report` renders baseline-versus-current plots into one HTML file, from
captured data, a monitor summary, bin counts, or a batch summary.json."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, sample_rows
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.scoring import score_object
from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, evaluate
from onnxlambda.monitoring.window import Records
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from onnxlambda_cli import drift_report
from tests.conftest import MODELS
from tests.unit.capture_data import inference_records, jsonl

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def sections(page: str) -> list[str]:
    return re.findall(r"<section id='?\"?([\w-]+)", page)


def test_report_from_captured_files_has_a_section_and_a_plot_per_feature_and_the_output(
    tmp_path: Path,
) -> None:
    # GIVEN a directory of capture files (one gzip, one plain) with bill length shifted
    manifest = load_manifest(MODELS / "penguins")
    rows = inference_records(manifest, 300, START, seed=9, shift={"bill_length_mm": 10.0})
    captured = tmp_path / "capture" / "2026" / "11" / "27" / "09"
    captured.mkdir(parents=True)
    (captured / "a.gz").write_bytes(gzip.compress(jsonl(rows[:150])))
    (captured / "b").write_bytes(jsonl(rows[150:]))
    out = tmp_path / "report.html"
    # WHEN the report command runs on it
    assert (
        drift_report.main(
            [
                "--captured",
                str(tmp_path / "capture"),
                "--model-dir",
                str(MODELS / "penguins"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    page = out.read_text()
    # THEN the page has a summary, live performance, one section per feature and the output
    expected = ["summary", "performance", *[f"feature-{f}" for f in manifest.feature_names], "output"]
    assert sections(page) == expected
    # AND each feature and the output has a chart with one bar per bin for baseline and current
    assert page.count("<svg") == len(manifest.features) + 1
    island_bins = len(manifest.baselines.features["island"].counts)
    island = page.split("<section id='feature-island'>")[1].split("</section>")[0]
    assert island.count("<rect") == 2 * island_bins
    # AND the verdicts name the shifted feature
    row = re.search(r"feature-bill_length_mm'>bill_length_mm</a>.*?</tr>", page)
    assert row is not None
    assert "DRIFT" in row.group(0)
    assert page.count(">DRIFT</td>") == 1  # and only it


def test_report_from_a_monitor_summary(tmp_path: Path) -> None:
    # GIVEN a summary as the monitor function stores it (regression model: a score histogram)
    manifest = load_manifest(MODELS / "diabetes")
    records = Records(inferences=inference_records(manifest, 150, START, seed=3))
    summary = evaluate(manifest, records, START, START + timedelta(hours=1), MonitorSettings()).summary
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    out = tmp_path / "report.html"
    # WHEN rendered
    assert drift_report.main(["--summary", str(path), "--out", str(out)]) == 0
    page = out.read_text()
    # THEN the output section plots the baseline's score bins and nothing drifts
    assert "Drift report: diabetes 1.0.0" in page
    output = page.split("<section id='output'>")[1]
    assert output.count("<rect") == 2 * len(manifest.baselines.output.counts)
    assert ">DRIFT<" not in page
    assert "not enough feedback" in page


def test_report_from_bin_counts_gathered_elsewhere(tmp_path: Path) -> None:
    # GIVEN bin counts as a batch job could sum them: bill depth piled into the last bin
    manifest = load_manifest(MODELS / "penguins")
    features: dict[str, object] = {}
    for name, baseline in manifest.baselines.features.items():
        if isinstance(baseline.counts, dict):
            features[name] = dict(baseline.counts)
        else:
            features[name] = list(baseline.counts)
    features["bill_depth_mm"] = [0] * 9 + [300]
    path = tmp_path / "counts.json"
    path.write_text(
        json.dumps({"features": features, "output": {"Adelie": 120, "Chinstrap": 50, "Gentoo": 100}})
    )
    out = tmp_path / "report.html"
    # WHEN rendered against the manifest
    assert (
        drift_report.main(["--counts", str(path), "--model-dir", str(MODELS / "penguins"), "--out", str(out)])
        == 0
    )
    page = out.read_text()
    # THEN the moved feature, and only it, is flagged; the identical ones are not
    assert sections(page)[-1] == "output"
    assert page.count(">DRIFT</td>") == 1
    assert re.search(r"feature-bill_depth_mm'>bill_depth_mm</a>.*?>DRIFT</td>", page)


@pytest.fixture(scope="module")
def penguins_scoring(penguins_dir: Path) -> Service:
    return Service(ModelRuntime.load(penguins_dir), Settings.from_env())


def batch_summary(service: Service, rows: list[dict[str, object]], key: str) -> dict[str, Any]:
    """A summary.json as the batch function writes it: score_object against moto's S3."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="report-test")
        s3.put_object(Bucket="report-test", Key=key, Body=csv_bytes(rows, service.manifest.feature_names))
        summary = score_object(
            s3, service.runtime, service.validator, BatchConfig(), bucket="report-test", key=key
        )
        stored = s3.get_object(Bucket="report-test", Key=summary["output"]["summary"])["Body"].read()
    return dict(json.loads(stored))


def test_report_from_a_batch_summary_plots_the_file_against_the_baseline(
    tmp_path: Path, penguins_scoring: Service
) -> None:
    # GIVEN the summary.json of a real batch run over 1,500 rows with heavier penguins
    manifest = penguins_scoring.manifest
    rows = [{**r, "body_mass_g": 6000.0} for r in sample_rows(manifest, 1500, seed=21)]
    stored = batch_summary(penguins_scoring, rows, "incoming/heavy.csv")
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(stored))
    out = tmp_path / "report.html"
    # WHEN the report command renders it against the model that scored it
    args = ["--summary", str(path), "--model-dir", str(MODELS / "penguins"), "--out", str(out)]
    assert drift_report.main(args) == 0
    page = out.read_text()
    # THEN it has the summary, a performance note, one section per feature and the output
    expected = ["summary", "performance", *[f"feature-{f}" for f in manifest.feature_names], "output"]
    assert sections(page) == expected
    assert "Batch file s3://report-test/incoming/heavy.csv" in page
    assert "1500 rows scored, 0 rejected" in page
    assert "carries no ground truth" in page
    # AND each chart has one baseline and one current bar per baseline bin (the file's counts)
    assert page.count("<svg") == len(manifest.features) + 1
    mass = page.split("<section id='feature-body_mass_g'>")[1].split("</section>")[0]
    assert mass.count("<rect") == 2 * len(manifest.baselines.features["body_mass_g"].counts)
    # AND the moved feature is flagged
    assert re.search(r"feature-body_mass_g'>body_mass_g</a>.*?>DRIFT</td>", page)
    # AND the report's PSI and JS are the batch summary's own numbers, exactly
    report = drift_report.summary_from_batch(stored, MODELS / "penguins", 100)
    for name, column in [*stored["drift"]["features"].items(), ("output", stored["drift"]["output"])]:
        judged = report["output"] if name == "output" else report["features"][name]
        assert (judged["psi"], judged["js_distance"]) == (column["psi"], column["js"]), name
        assert judged["n"] == column["count"]


def test_a_batch_summary_needs_the_model_that_scored_it_and_its_counts(
    tmp_path: Path, penguins_scoring: Service
) -> None:
    stored = batch_summary(
        penguins_scoring, sample_rows(penguins_scoring.manifest, 50, seed=22), "incoming/a.csv"
    )
    # GIVEN the wrong model directory THEN the report refuses and names both models
    with pytest.raises(drift_report.ReportInputError, match=r"penguins 1\.0\.0.*diabetes"):
        drift_report.summary_from_batch(stored, MODELS / "diabetes", 100)
    # AND a summary written before per-bin counts existed is refused with what to do
    old = json.loads(json.dumps(stored))
    for column in [*old["drift"]["features"].values(), old["drift"]["output"]]:
        del column["counts"]
    with pytest.raises(drift_report.ReportInputError, match="score the file again"):
        drift_report.summary_from_batch(old, MODELS / "penguins", 100)
    # AND a failed run has nothing to plot
    with pytest.raises(drift_report.ReportInputError, match="no drift counts"):
        drift_report.summary_from_batch(
            {**stored, "status": "failed", "drift": None}, MODELS / "penguins", 100
        )
