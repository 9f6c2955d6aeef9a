"""The benchmark harness runs end to end on the built function (tiny counts; timings not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.compare import compared
from bench.compare import main as compare_main
from bench.functions import API, MINIMAL
from bench.run import Plan, run


def test_quick_bench_writes_a_report_with_every_section(build_dir: Path, tmp_path: Path) -> None:
    # GIVEN the built API function and the minimal baseline, with the smallest useful counts
    plan = Plan(
        cold_starts=1,
        warm_iterations=3,
        warmup=1,
        row_counts=(1, 10),
        rss_requests=6,
        rss_every=3,
        functions=(API, MINIMAL),
        quick=True,
    )
    # WHEN the harness runs
    paths = run(plan, out_dir=tmp_path, build_dir=build_dir)
    # THEN it writes the report, the chart and the raw figures
    report = paths["md"].read_text()
    for section in (
        "## Cold start",
        "## Warm handler Duration",
        "## Size",
        "## Memory",
        "## Cost",
        "## Targets",
    ):
        assert section in report
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    results = json.loads(paths["json"].read_text())
    summary = results["summary"]
    # and every figure is a real reading: REPORT durations, /proc memory, sizes on disk
    for name in (API, MINIMAL):
        assert summary["cold"][name]["n"] == 1
        assert summary["cold"][name]["median_ms"] > 0
        assert summary["cold"][name]["peak_rss_mb"] > 10
        assert {k: v["n"] for k, v in summary["warm"][name].items()} == {"1": 3, "10": 3}
        assert summary["sizes_mb"][name]["total"] > 1
    assert summary["warm"]["floor"]["10"]["p50_ms"] > 0
    assert results["raw"]["rss"]["requests"] == [0, 3, 6]
    assert all(kb > 0 for kb in results["raw"]["rss"]["rss_kb"])


def test_bench_compare_measures_two_builds_and_the_minimal_handler(
    build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two build outputs (here the same one twice: the comparison, not a speed-up, is tested)
    fns = compared(build_dir, build_dir)
    assert {fn.logical_id for fn in fns.values()} == {"ApiFunctionBefore", "ApiFunction", "MinimalBaseline"}
    # WHEN the comparison runs with the smallest counts
    assert compare_main([str(build_dir), "--cold", "1", "--warm", "2"]) == 0
    # THEN it prints a cold-start line per function, the paired ratio and warm p50s per size
    out = capsys.readouterr().out
    assert out.count("cold start ") == 4
    assert "paired by round" in out
    assert all(f"warm {rows:>5} rows p50" in out for rows in (1, 100, 1000))
