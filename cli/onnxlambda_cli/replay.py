"""Replay captured traffic through a candidate model and the current one; JSON + HTML; a gate.

    onnxlambda replay --candidate models/penguins-next --current models/penguins \\
        --captured capture-copy/ [--start 2026-12-01T00:00 --end ...] [--max-rows 10000] \\
        --json replay.json --html replay.html
    onnxlambda replay --candidate DIR --current DIR --s3 s3://<capture bucket>/capture/ --since-hours 24

Sources: --captured reads capture files (JSON lines, gzip or plain; e.g. `aws s3 sync
s3://<bucket>/capture/ DIR`); --s3 reads the capture bucket's hour prefixes newest first and stops
at --max-rows rows (or --max-objects objects). The window is [--start, --end) or the last
--since-hours (default 24 for --s3; everything for --captured). Without --current the candidate is
compared with the answers production gave, as captured (the most common model sha256 among the
rows). Both models run through ModelRuntime and the serving validation (onnxlambda.release.replay).

Exit code: 0 when every enabled threshold holds, 2 when the gate fails, 1 when the input cannot
be read. Thresholds: --min-rows, --max-refused-share, --min-agreement, --max-output-psi,
--max-abs-diff-p95 (regression; default a tenth of the baseline output's std_dev),
--max-latency-ratio (off by default: timings on a shared machine are for reading).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.monitoring.window import Records, read_directory
from onnxlambda.release.captured import read_recent_s3, select
from onnxlambda.release.replay import ReplayThresholds, replay
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda_cli.charts import BASELINE_COLOUR, CURRENT_COLOUR, bar_chart, histogram

EXIT_FAILED = 2
EXIT_UNREADABLE = 1


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix/ URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def load_records(
    args: argparse.Namespace, s3: Any = None, now: datetime | None = None
) -> tuple[Records, dict[str, Any], datetime | None, datetime | None]:
    """The captured records, a description of where they came from, and the window."""
    now = now or datetime.now(UTC)
    end = _time(args.end) if args.end else None
    start = _time(args.start) if args.start else None
    since = args.since_hours if args.since_hours is not None else (24.0 if args.s3 else None)
    if args.s3:
        end = end or now
    if start is None and since is not None:
        start = (end or now) - timedelta(hours=since)
    if args.captured:
        records = read_directory(args.captured)
        source: dict[str, Any] = {"kind": "directory", "location": str(args.captured)}
    else:
        bucket, prefix = parse_s3(args.s3)
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        assert start is not None
        assert end is not None
        records, objects = read_recent_s3(
            s3, bucket, prefix, start, end, max_rows=args.max_rows, max_objects=args.max_objects
        )
        source = {"kind": "s3", "location": f"s3://{bucket}/{prefix}", "objects_read": objects}
    source.update(
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        max_rows=args.max_rows,
        unreadable_lines=records.unreadable_lines,
    )
    return records, source, start, end


def thresholds_of(args: argparse.Namespace) -> ReplayThresholds:
    return ReplayThresholds(
        min_rows=args.min_rows,
        max_refused_share=args.max_refused_share,
        min_agreement=args.min_agreement,
        max_output_psi=args.max_output_psi,
        max_abs_diff_p95=args.max_abs_diff_p95,
        max_latency_ratio=args.max_latency_ratio,
    )


# -- HTML ---------------------------------------------------------------------------------------


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"
    return html.escape(str(value))


def _model(ref: dict[str, Any]) -> str:
    if "captured_answers_of" in ref:
        sha = ref["captured_answers_of"] or "-"
        return f"the answers captured from model sha256 {html.escape(sha[:12])}..."
    name, version, sha = (html.escape(ref[k]) for k in ("name", "version", "sha256"))
    return f"{name} {version} (sha256 {sha[:12]}...)"


def _refusal_table(title: str, refused: dict[str, Any]) -> str:
    if not refused["rows"]:
        return f"<p>{html.escape(title)}: none.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(field)}</td><td>{html.escape(code)}</td><td>{n}</td></tr>"
        for field, codes in refused["by_field"].items()
        for code, n in codes.items()
    )
    codes = ", ".join(f"{html.escape(c)} {n}" for c, n in refused["by_code"].items())
    return (
        f"<p>{html.escape(title)}: <b>{refused['rows']}</b> rows ({codes}).</p>"
        f"<table><tr><th>field</th><th>code</th><th>rows</th></tr>{rows}</table>"
    )


def _flip_table(comparison: dict[str, Any]) -> str:
    labels = comparison["labels"]
    head = "".join(f"<th>{html.escape(b)}</th>" for b in labels)
    body = ""
    for a in labels:
        cells = "".join(
            f"<td class='{'same' if a == b else ('flip' if comparison['flips'][a][b] else '')}'>"
            f"{comparison['flips'][a][b]}</td>"
            for b in labels
        )
        body += f"<tr><td>{html.escape(a)}</td>{cells}</tr>"
    return (
        "<table><tr><th>current \\ candidate</th>" + head + "</tr>" + body + "</table>"
        f"<p>Agreement {_fmt(comparison['agreement'])} ({comparison['agreed_rows']} same label, "
        f"{comparison['flipped_rows']} flipped); mean shift of the current label's probability "
        f"{_fmt(comparison['mean_probability_shift'])}.</p>"
    )


def _differences(comparison: dict[str, Any]) -> str:
    d = comparison["differences"]
    quantiles = "".join(f"<tr><td>{q}</td><td>{_fmt(v)}</td></tr>" for q, v in d["quantiles"].items())
    hist = comparison["histogram"]
    labels = [f"[{a:.3g}, {b:.3g})" for a, b in zip(hist["edges"], hist["edges"][1:], strict=False)]
    chart = (
        histogram("candidate - current: share of rows per difference", labels, hist["counts"])
        if labels
        else ""
    )
    return (
        f"<p>Differences candidate - current on {comparison['rows']} rows: mean {_fmt(d['mean'])}, "
        f"mean |d| {_fmt(d['mean_abs'])}, std {_fmt(d['std'])}, min {_fmt(d['min'])}, max {_fmt(d['max'])}; "
        f"p95 |d| {_fmt(d['abs_quantiles'].get('p95'))}; within tolerance {_fmt(comparison['tolerance'])}: "
        f"{_fmt(comparison['within_tolerance'])}.</p>"
        f"<table><tr><th>quantile</th><th>difference</th></tr>{quantiles}</table>{chart}"
    )


def render(report: dict[str, Any]) -> str:
    """One self-contained HTML page in the drift report's style (inline SVG, no dependencies)."""
    gate = report["gate"]
    rows = report["rows"]
    comparison = report["comparison"]
    verdict = "PASSED" if gate["passed"] else "FAILED: " + ", ".join(gate["failures"])
    checks = "".join(
        f"<tr><td>{html.escape(c['check'])}</td><td>{_fmt(c['value'])}</td><td>{_fmt(c['limit'])}</td>"
        f"<td class='{'' if c['passed'] is not False else 'fail'}'>"
        f"{'-' if c['passed'] is None else ('ok' if c['passed'] else 'FAIL')}</td></tr>"
        for c in gate["checks"]
    )
    source = report.get("source", {})
    kind = comparison["kind"]
    if kind == "classification":
        detail = "<h2>Label agreement and flips</h2>" + _flip_table(comparison)
    elif kind == "regression":
        detail = "<h2>Differences</h2>" + _differences(comparison)
    else:
        detail = f"<p>Outputs cannot be compared: {html.escape(str(comparison))}</p>"
    drift = comparison.get("output_drift")
    drift_html = ""
    if drift:
        drift_html = (
            f"<section id='drift'><h2>Output drift (same rows)</h2><p>PSI {_fmt(drift['psi'])}, "
            f"Jensen-Shannon distance {_fmt(drift['js_distance'])} of the candidate's outputs against "
            "the current model's.</p>"
            + bar_chart(
                "output: share per bin, current vs candidate",
                drift["bins"],
                drift["current_counts"],
                drift["candidate_counts"],
            )
            + "</section>"
        )
    lat = report["latency"]
    lat_rows = "".join(
        f"<tr><td>{name}</td><td>{_fmt(v['single_row_p50_ms'])}</td><td>{_fmt(v['single_row_p99_ms'])}</td>"
        f"<td>{_fmt(v['batch_ms_per_1000_rows'])}</td><td>{v['single_row_samples']}</td></tr>"
        for name, v in (("current", lat.get("current")), ("candidate", lat.get("candidate")))
        if v
    )
    ratios = (
        f"<p>Same-run ratio candidate/current: p50 {_fmt(lat.get('ratio_p50'))}, "
        f"p99 {_fmt(lat.get('ratio_p99'))}.</p>"
        if "ratio_p50" in lat
        else ""
    )
    reproduced = report.get("reproduced")
    repro = (
        f"<p>The current model re-run on its own captured rows gave the same answer on "
        f"{reproduced['same_answer']} of {reproduced['rows']}.</p>"
        if reproduced
        else ""
    )
    cand = report["candidate"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Replay report: {html.escape(cand["name"])} {html.escape(cand["version"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
.fail,.flip{{color:#b00;font-weight:bold}}.same{{background:#eef5ee}}
.legend span{{display:inline-block;width:1em;height:1em;margin:0 .3em}}</style></head>
<body>
<h1>Replay report: {html.escape(cand["name"])} {html.escape(cand["version"])}</h1>
<p>Candidate {_model(cand)} against {_model(report["current"])}, on captured traffic from
{html.escape(str(source.get("location", "-")))} ({html.escape(str(source.get("start") or "start"))} to
{html.escape(str(source.get("end") or "end"))}).</p>
<section id="gate"><h2>Gate: {html.escape(verdict)}</h2>
<table><tr><th>check</th><th>value</th><th>limit</th><th>result</th></tr>{checks}</table></section>
<section id="rows"><h2>Rows</h2>
<p>{rows["records"]} captured rows read, {rows["skipped_redacted"]} skipped (a feature was redacted at
capture), {rows["replayed"]} replayed, {rows["compared"]} answered by both.</p>
{_refusal_table("Rows the candidate's contract would refuse, served today", rows["newly_refused"])}
{_refusal_table("Rows the current contract refuses too (older traffic)", rows["current_refused"])}
{repro}</section>
<section id="comparison">{detail}</section>
<p class="legend"><span style="background:{BASELINE_COLOUR}"></span>current model
<span style="background:{CURRENT_COLOUR}"></span>candidate</p>
{drift_html}
<section id="latency"><h2>Latency (validate + run, this machine)</h2>
<table><tr><th>model</th><th>1-row p50 ms</th><th>1-row p99 ms</th><th>batched ms / 1,000 rows</th>
<th>samples</th></tr>
{lat_rows}</table>{ratios}</section>
</body></html>
"""


def summary_line(report: dict[str, Any]) -> str:
    gate = report["gate"]
    rows = report["rows"]
    comparison = report["comparison"]
    parts = [f"{rows['compared']} rows compared", f"{rows['newly_refused']['rows']} newly refused"]
    if comparison["kind"] == "classification":
        parts.append(f"agreement {_fmt(comparison['agreement'])}")
    elif comparison["kind"] == "regression":
        parts.append(f"p95 |difference| {_fmt(comparison['differences']['abs_quantiles'].get('p95'))}")
    psi = (comparison.get("output_drift") or {}).get("psi")
    parts.append(f"output PSI {_fmt(psi)}")
    verdict = "passed" if gate["passed"] else "FAILED (" + ", ".join(gate["failures"]) + ")"
    return (
        f"replay {report['candidate']['name']} {report['candidate']['version']}: "
        + "; ".join(parts)
        + f": {verdict}"
    )


def main(argv: Sequence[str] | None = None, s3: Any = None, now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="onnxlambda replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidate", type=Path, required=True, help="the new model directory")
    parser.add_argument("--current", type=Path, help="the serving model directory (else: captured answers)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--captured", type=Path, help="directory of capture files")
    source.add_argument("--s3", help="s3://<capture bucket>/<prefix>/ (e.g. capture/)")
    parser.add_argument("--start", help="window start (ISO 8601; UTC unless it says otherwise)")
    parser.add_argument("--end", help="window end, exclusive (default: now for --s3)")
    parser.add_argument("--since-hours", type=float, help="window = the last N hours (default 24 for --s3)")
    parser.add_argument("--max-rows", type=int, default=10_000, help="newest rows replayed at most")
    parser.add_argument("--max-objects", type=int, default=1000, help="S3 objects read at most")
    parser.add_argument("--latency-rows", type=int, default=200, help="rows timed one at a time per model")
    parser.add_argument("--min-rows", type=int, default=1)
    parser.add_argument("--max-refused-share", type=float, default=0.0)
    parser.add_argument("--min-agreement", type=float, default=0.95)
    parser.add_argument("--max-output-psi", type=float, default=0.1)
    parser.add_argument("--max-abs-diff-p95", type=float, default=None)
    parser.add_argument("--max-latency-ratio", type=float, default=None)
    parser.add_argument("--json", type=Path, help="write the report as JSON here ('-': stdout)")
    parser.add_argument("--html", type=Path, help="write the HTML report here")
    args = parser.parse_args(argv)
    try:
        candidate = ModelRuntime.load(args.candidate)
        current = ModelRuntime.load(args.current) if args.current else None
        records, where, start, end = load_records(args, s3=s3, now=now)
    except (ModelLoadError, OSError, ValueError) as exc:
        print(f"onnxlambda replay: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    chosen = select(
        records.inferences,
        start=start,
        end=end,
        max_rows=args.max_rows,
        exclude_sha256=None if current else candidate.manifest.sha256,
    )
    if current is None:  # compare with one model's captured answers: the most common one's
        from onnxlambda.release.captured import served_by

        sha = served_by(chosen)
        chosen = [r for r in chosen if r.get("model_sha256") == sha]
    report = replay(chosen, candidate, current, thresholds_of(args), latency_rows=args.latency_rows)
    report["source"] = where
    if args.json:
        text = json.dumps(report, indent=2, allow_nan=False, default=str)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n", encoding="utf-8")
    if args.html:
        args.html.write_text(render(report), encoding="utf-8")
    print(summary_line(report), file=sys.stderr if str(args.json) == "-" else sys.stdout)
    return 0 if report["gate"]["passed"] else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
