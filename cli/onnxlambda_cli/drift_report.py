"""Render a drift report: an HTML page, baseline versus current, per feature and for the output.

    onnxlambda drift-report --captured DIR  [--model-dir models/penguins] --out report.html
    onnxlambda drift-report --summary FILE  [--model-dir ...] --out report.html
    onnxlambda drift-report --counts FILE   [--model-dir ...] --out report.html

--captured reads capture files (JSON lines, gzip or plain, e.g. `aws s3 sync s3://<bucket>/capture/ DIR`)
and judges all of them as one window with the monitor's own code. --summary renders either a
summary the monitor function stored under s3://<bucket>/monitor/, or a batch summary.json written
next to a scored file (onnxlambda.batch.scoring): its per-bin counts are judged against the manifest in
--model-dir (which must be the model that scored the file) with the monitor's detectors; PSI and JS
come out identical to the batch summary's, since both use onnxlambda.monitoring.drift. --counts takes bin
counts gathered elsewhere: {"features": {name: [count per baseline bin] | {category: count}},
"output": ...}. Charts are inline SVG: the page is one file with no dependencies.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, evaluate, summary_from_counts
from onnxlambda.monitoring.window import read_directory
from onnxlambda_cli.charts import BASELINE_COLOUR, CURRENT_COLOUR, bar_chart


def summary_from_captured(directory: Path, model_dir: Path, min_samples: int) -> dict[str, Any]:
    manifest = load_manifest(model_dir)
    records = read_directory(directory)
    stamps = [r["ts"] for r in records.inferences] or [0]
    start = datetime.fromtimestamp(min(stamps) / 1000, UTC)
    end = datetime.fromtimestamp(max(stamps) / 1000, UTC) + timedelta(milliseconds=1)
    settings = MonitorSettings(min_samples=min_samples, min_feedback=1, label_lookback=timedelta(0))
    return evaluate(manifest, records, start, end, settings).summary


class ReportInputError(ValueError):
    """The input cannot be rendered (say why, and what to pass instead)."""


def is_batch_summary(data: dict[str, Any]) -> bool:
    return "drift" in data and "rows" in data and "input" in data


def summary_from_batch(batch: dict[str, Any], model_dir: Path, min_samples: int) -> dict[str, Any]:
    """A report summary from a batch summary.json: the file's bin counts judged by the monitor."""
    manifest = load_manifest(model_dir)
    model, source = batch.get("model", {}), batch.get("input", {})
    if model.get("sha256") != manifest.sha256:
        raise ReportInputError(
            f"the batch file was scored by {model.get('name')} {model.get('version')} "
            f"(sha256 {str(model.get('sha256'))[:12]}...), {model_dir} holds {manifest.name} "
            f"{manifest.version} (sha256 {manifest.sha256[:12]}...): pass the scoring model's --model-dir"
        )
    drift = batch.get("drift")
    if batch.get("status") != "succeeded" or not drift:
        raise ReportInputError(f"batch status {batch.get('status')!r}: the summary holds no drift counts")
    columns = {**drift["features"], "output": drift["output"]}
    lacking = sorted(name for name, col in columns.items() if "counts" not in col)
    if lacking:
        raise ReportInputError(
            f"no per-bin counts for {', '.join(lacking)}: the summary predates them; score the file again"
        )
    label = f"s3://{source.get('bucket')}/{source.get('key')}"
    summary = summary_from_counts(
        manifest,
        {name: col["counts"] for name, col in drift["features"].items()},
        drift["output"]["counts"],
        MonitorSettings(min_samples=min_samples),
        label,
    )
    rows = batch.get("rows", {})
    summary["source"] = (
        f"Batch file {label} (version {source.get('version_id') or '-'}, scored {batch.get('started_at')}): "
        f"{rows.get('scored', 0)} rows scored, {rows.get('rejected', 0)} rejected"
    )
    summary["performance"] = {
        "note": "a batch file carries no ground truth: live performance comes from the monitor's "
        "feedback join"
    }
    return summary


def _verdict(drift: bool | None) -> str:
    return {True: "DRIFT", False: "ok", None: "too few samples"}[drift]


def render(summary: dict[str, Any]) -> str:
    model, window = summary["model"], summary["window"]
    rows, sections = [], []
    entries = [*summary["features"].items()] + (
        [("output", summary["output"])] if summary.get("output") else []
    )
    for name, r in entries:
        rows.append(
            "<tr>"
            f"<td><a href='#{'output' if name == 'output' else 'feature-' + html.escape(name)}'>"
            f"{html.escape(name)}</a></td><td>{r['kind']}</td><td>{r['n']}</td>"
            f"<td>{r['psi']:.4f}</td><td>{r['psi_threshold']:.4f}</td><td>{r['js_distance']:.4f}</td>"
            f"<td>{r['p_value']:.3g}</td><td>{r['linf']:.4f}</td>"
            f"<td class='{_verdict(r['drift']).split()[0].lower()}'>{_verdict(r['drift'])}</td></tr>"
        )
        anchor = "output" if name == "output" else f"feature-{html.escape(name)}"
        heading = "Output (predictions)" if name == "output" else f"Feature: {html.escape(name)}"
        sections.append(
            f"<section id='{anchor}'><h2>{heading}</h2>"
            f"<p>PSI {r['psi']:.4f} (threshold {r['psi_threshold']:.4f}), Jensen-Shannon distance "
            f"{r['js_distance']:.4f}, chi-square {r['chi2']:.2f} (p = {r['p_value']:.3g}), L-infinity "
            f"{r['linf']:.4f} on {r['n']} values: <b>{_verdict(r['drift'])}</b></p>"
            + bar_chart(
                f"{name}: share per bin, baseline vs current",
                r["bins"],
                r["baseline_counts"],
                r["current_counts"],
            )
            + "</section>"
        )
    perf = summary.get("performance", {})
    if "note" in perf:
        perf_text = perf["note"]
    elif "live" in perf:
        evaluation = perf.get("evaluation", float("nan"))
        perf_text = (
            f"{perf['metric']} live {perf['live']:.4f} vs evaluation {evaluation:.4f} "
            f"(ratio {perf.get('ratio', float('nan')):.3f}) on {perf['usable']} labelled rows"
        )
    else:
        perf_text = f"not enough feedback joined with captured predictions ({perf.get('usable', 0)} rows)"
    t = summary["thresholds"]
    scope = (
        html.escape(summary["source"])
        if summary.get("source")
        else f"Window {html.escape(window['start'])} to {html.escape(window['end'])}: "
        f"{summary['samples']} captured rows"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift report: {html.escape(model["name"])} {html.escape(model["version"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
.drift{{color:#b00;font-weight:bold}}
.legend span{{display:inline-block;width:1em;height:1em;margin:0 .3em}}</style></head>
<body>
<h1>Drift report: {html.escape(model["name"])} {html.escape(model["version"])}</h1>
<p>{scope}
(model sha256 {html.escape(model["sha256"][:12])}...). Decisions: numeric features drift when PSI exceeds
max({t["psi_floor"]}, the window-size-aware critical value); categorical ones when the chi-square p-value is
below {t["alpha_per_test"]:.2g} and L-infinity is at least {t["linf_floor"]}.
At least {t["min_samples"]} values are needed to decide.</p>
<p class="legend"><span style="background:{BASELINE_COLOUR}"></span>baseline (training data, manifest)
<span style="background:{CURRENT_COLOUR}"></span>current (window or batch file)</p>
<section id="summary"><h2>Summary</h2>
<table><tr><th>name</th><th>kind</th><th>n</th><th>PSI</th><th>PSI threshold</th><th>JS distance</th>
<th>chi-square p</th><th>L-inf</th><th>verdict</th></tr>
{"".join(rows)}
</table></section>
<section id="performance"><h2>Live performance</h2><p>{html.escape(perf_text)}</p></section>
{"".join(sections)}
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--captured", type=Path, help="directory of capture files (JSON lines, gzip or plain)"
    )
    source.add_argument(
        "--summary", type=Path, help="a monitor summary, or a batch summary.json (with --model-dir)"
    )
    source.add_argument("--counts", type=Path, help="bin counts per feature (and output) as JSON")
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("ONNXLAMBDA_MODEL_DIR") or "models/penguins")
    )
    parser.add_argument("--min-samples", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.captured:
        summary = summary_from_captured(args.captured, args.model_dir, args.min_samples)
    elif args.counts:
        counts = json.loads(args.counts.read_text())
        settings = MonitorSettings(min_samples=args.min_samples)
        summary = summary_from_counts(
            load_manifest(args.model_dir),
            counts["features"],
            counts.get("output"),
            settings,
            args.counts.name,
        )
    else:
        summary = json.loads(args.summary.read_text())
        if is_batch_summary(summary):
            try:
                summary = summary_from_batch(summary, args.model_dir, args.min_samples)
            except ReportInputError as exc:
                parser.error(f"{args.summary}: {exc}")
    args.out.write_text(render(summary), encoding="utf-8")
    print(f"wrote {args.out} ({summary['samples']} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
