"""`python -m devtools.drift_report` renders baseline-versus-current plots into one HTML file."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools import drift_report
from onnxlambda.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, evaluate
from onnxlambda.monitoring.window import Records
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
