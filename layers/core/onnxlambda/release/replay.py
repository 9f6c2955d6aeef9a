"""Replay captured traffic through a candidate model and compare it with the current one.

Captured rows (onnxlambda.monitoring.capture: the features exactly as callers sent them) are the
real traffic a new version will meet. Replaying them answers what a golden set cannot:

    rows       how many were replayed; which the candidate's contract would refuse, by error code
               and field (the same Validator as serving: those callers would get a 422)
    agreement  classification: share of rows with the same label, and the flip matrix
               (current label -> candidate label); regression: the distribution of the
               differences candidate - current (quantiles, mean, share within tolerance)
    drift      output drift between the two on the same rows, with the project's own PSI and
               Jensen-Shannon distance (onnxlambda.monitoring.drift): class shares, or the
               prediction histogram over the baseline's bins
    latency    both models on the same rows, batched and one row at a time, interleaved: medians,
               p99 and their same-run ratio

The reference ("current") is either a model directory, run here through ModelRuntime and the
same validation as serving, or - where only the new model is at hand, as in the pre-traffic hook -
the answers production gave, as captured (`prediction` of each record, restricted to one model
sha256). Thresholds turn the report into a pass/fail gate.

Records come from a directory (read_directory) or from the capture bucket, newest first and
bounded: `read_recent_s3` stops listing and reading once it holds enough rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

from onnxlambda import settings
from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, NumericBaseline, RegressionOutput
from onnxlambda.monitoring.drift import js_distance, numeric_bin_labels, numeric_bins, psi
from onnxlambda.monitoring.window import Record, Records, S3Reader, hour_prefixes
from onnxlambda.serving.dataplane import answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

REPORT_SCHEMA: Final = 1
QUANTILES: Final = (1, 5, 25, 50, 75, 95, 99)


@dataclass(frozen=True, slots=True)
class ReplayThresholds:
    """When a replay fails. None switches a check off (it is still reported)."""

    min_rows: int = 1  # fewer compared rows than this: not enough evidence, fail
    max_refused_share: float = 0.0  # captured rows the candidate would refuse (422 to a real caller)
    min_agreement: float | None = 0.95  # classification: same label
    max_output_psi: float | None = 0.1  # output distribution, candidate vs current, same rows
    # regression: p95 of |candidate - current|; None = 0.1 x the baseline output's std_dev
    max_abs_diff_p95: float | None = None
    max_latency_ratio: float | None = None  # candidate / current, single-row p50 (noisy: off by default)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Side:
    """One model's view of the replayed rows."""

    refused: dict[int, list[FieldError]] = field(default_factory=dict)
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    batch_ms: float = 0.0
    single_ms: list[float] = field(default_factory=list)


def served_by(records: Sequence[Record]) -> str | None:
    """The sha256 that served most of these records (the current model, in steady state)."""
    counts = Counter(r.get("model_sha256") for r in records if isinstance(r.get("model_sha256"), str))
    return str(counts.most_common(1)[0][0]) if counts else None


def select(
    records: Sequence[Record],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_rows: int | None = None,
    model_sha256: str | None = None,
    exclude_sha256: str | None = None,
) -> list[Record]:
    """The newest `max_rows` inference records in [start, end), optionally of one model only."""
    lo = int(start.timestamp() * 1000) if start else None
    hi = int(end.timestamp() * 1000) if end else None
    picked = [
        r
        for r in records
        if isinstance(r.get("features"), dict)
        and (lo is None or r["ts"] >= lo)
        and (hi is None or r["ts"] < hi)
        and (model_sha256 is None or r.get("model_sha256") == model_sha256)
        and (exclude_sha256 is None or r.get("model_sha256") != exclude_sha256)
    ]
    picked.sort(key=lambda r: (r["ts"], str(r.get("inference_id", ""))), reverse=True)
    kept = picked if max_rows is None else picked[:max_rows]
    return list(reversed(kept))


def read_recent_s3(
    s3: S3Reader,
    bucket: str,
    prefix: str,
    start: datetime,
    end: datetime,
    *,
    max_rows: int,
    max_objects: int = 1000,
) -> tuple[Records, int]:
    """Captured records from the newest hour prefix backwards, stopping once `max_rows` inference
    records with ts in [start, end) are held or `max_objects` objects were read. Returns the
    records and the number of objects read.

    Within an hour prefix, objects are read newest first: ListObjectsV2 returns keys in UTF-8
    binary order, and Firehose names objects by delivery time, so the reverse order is newest first.
    """
    # ListObjectsV2 returns keys in UTF-8 binary (lexicographic) order, as S3's API reference says:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
    records = Records()
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    held, read = 0, 0
    paginator = s3.get_paginator("list_objects_v2")
    for hour in reversed(hour_prefixes(prefix, start, end)):
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=hour)
            for obj in page.get("Contents", [])
        ]
        for key in reversed(keys):
            before = len(records.inferences)
            records.add_lines(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            held += sum(1 for r in records.inferences[before:] if lo <= r["ts"] < hi)
            read += 1
            if held >= max_rows or read >= max_objects:
                return records, read
    return records, read


# -- the replay ---------------------------------------------------------------------------------


def _rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [dict(r["features"]) for r in records]


def _run_model(
    runtime: ModelRuntime,
    rows: list[dict[str, Any]],
    wanted: Sequence[int] | None = None,
    *,
    chunk: int = 1000,
) -> _Side:
    """Validate (row by row, as serving does) and answer every row the contract accepts."""
    side = _Side()
    validator = Validator(runtime.manifest, max_rows=max(chunk, 1))
    indices = list(range(len(rows))) if wanted is None else list(wanted)
    for at in range(0, len(indices), chunk):
        part = indices[at : at + chunk]
        batch = validator.validate_partial([rows[i] for i in part])
        for local, problems in batch.errors.items():
            side.refused[part[local]] = problems
        if not batch.rows:
            continue
        started = time.perf_counter()
        prediction = runtime.run(batch.columns, batch.rows)
        side.batch_ms += (time.perf_counter() - started) * 1000.0
        for local, answer in zip(batch.good.tolist(), answers(runtime.manifest, prediction), strict=True):
            side.answers[part[local]] = answer
    return side


def _single_row_latency(
    runtimes: Sequence[ModelRuntime], rows: list[dict[str, Any]], indices: Sequence[int]
) -> list[list[float]]:
    """Milliseconds of validate + run for one row at a time, the models interleaved per row."""
    validators = [Validator(r.manifest, max_rows=1) for r in runtimes]
    out: list[list[float]] = [[] for _ in runtimes]
    for i in indices:
        for k, (runtime, validator) in enumerate(zip(runtimes, validators, strict=True)):
            started = time.perf_counter()
            batch = validator.validate([rows[i]])
            runtime.run(batch.columns, batch.rows)
            out[k].append((time.perf_counter() - started) * 1000.0)
    return out


def _refusals(refused: Mapping[int, list[FieldError]]) -> dict[str, Any]:
    by_code: Counter[str] = Counter()
    by_field: dict[str, Counter[str]] = {}
    for problems in refused.values():
        for code in {p.code for p in problems}:
            by_code[code] += 1
        for f, code in {(p.field, p.code) for p in problems}:
            by_field.setdefault(f, Counter())[code] += 1
    return {
        "rows": len(refused),
        "by_code": dict(sorted(by_code.items())),
        "by_field": {f: dict(sorted(c.items())) for f, c in sorted(by_field.items())},
    }


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def _latency(name: str, side: _Side, rows: int) -> dict[str, Any]:
    return {
        "model": name,
        "batch_ms": round(side.batch_ms, 3),
        "batch_ms_per_1000_rows": round(side.batch_ms / rows * 1000, 3) if rows else None,
        "single_row_p50_ms": round(_pct(side.single_ms, 50), 4) if side.single_ms else None,
        "single_row_p99_ms": round(_pct(side.single_ms, 99), 4) if side.single_ms else None,
        "single_row_samples": len(side.single_ms),
    }


def _classification(
    labels_ref: list[str], labels_cand: list[str], order: list[str], prob_shift: list[float]
) -> dict[str, Any]:
    flips: dict[str, dict[str, int]] = {}
    for a, b in zip(labels_ref, labels_cand, strict=True):
        row = flips.setdefault(a, {})
        row[b] = row.get(b, 0) + 1
    seen = order + sorted({*labels_ref, *labels_cand} - set(order))
    matrix = {a: {b: flips.get(a, {}).get(b, 0) for b in seen} for a in seen}
    same = sum(matrix[a][a] for a in seen)
    n = len(labels_ref)
    ref_counts = [sum(matrix[a].values()) for a in seen]
    cand_counts = [sum(matrix[a][b] for a in seen) for b in seen]
    return {
        "kind": "classification",
        "agreement": same / n if n else None,
        "agreed_rows": same,
        "flipped_rows": n - same,
        "labels": seen,
        "flips": matrix,
        "mean_probability_shift": float(np.mean(prob_shift)) if prob_shift else None,
        "output_drift": _drift(seen, ref_counts, cand_counts),
    }


def _regression(
    values_ref: list[float],
    values_cand: list[float],
    baseline: NumericBaseline | None,
    tolerance: float | None,
) -> dict[str, Any]:
    ref, cand = np.asarray(values_ref, dtype=np.float64), np.asarray(values_cand, dtype=np.float64)
    d = cand - ref
    absd = np.abs(d)
    n = int(d.size)
    cuts = (
        list(baseline.cut_points)
        if baseline is not None
        else list(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
    )
    out: dict[str, Any] = {
        "kind": "regression",
        "rows": n,
        "differences": {
            "mean": float(d.mean()) if n else None,
            "std": float(d.std()) if n else None,
            "min": float(d.min()) if n else None,
            "max": float(d.max()) if n else None,
            "mean_abs": float(absd.mean()) if n else None,
            "quantiles": {f"p{q}": float(np.percentile(d, q)) for q in QUANTILES} if n else {},
            "abs_quantiles": {f"p{q}": float(np.percentile(absd, q)) for q in (50, 95, 99)} if n else {},
        },
        "tolerance": tolerance,
        "within_tolerance": float(np.mean(absd <= tolerance)) if n and tolerance is not None else None,
        "histogram": _histogram(d),
        "output_drift": _drift(
            numeric_bin_labels(cuts),
            numeric_bins(cuts, ref).tolist(),
            numeric_bins(cuts, cand).tolist(),
        ),
    }
    return out


def _histogram(d: np.ndarray[Any, Any], bins: int = 15) -> dict[str, Any]:
    if not d.size:
        return {"edges": [], "counts": []}
    lo, hi = float(d.min()), float(d.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(d, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _drift(bins: list[str], ref: list[int], cand: list[int]) -> dict[str, Any]:
    has = sum(ref) > 0 and sum(cand) > 0
    return {
        "bins": bins,
        "current_counts": [int(x) for x in ref],
        "candidate_counts": [int(x) for x in cand],
        # PSI and JS of the candidate's outputs against the current model's on the same rows.
        "psi": psi(ref, cand) if has else None,
        "js_distance": js_distance(ref, cand) if has else None,
    }


def _ref(manifest: Manifest) -> dict[str, str]:
    return {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}


def _needs(record: Record, names: set[str]) -> bool:
    """Whether a record lacks, because it was redacted at capture, a feature the models need."""
    redacted = record.get("redacted")
    return isinstance(redacted, list) and bool(names & set(redacted))


def replay(
    records: Sequence[Record],
    candidate: ModelRuntime,
    current: ModelRuntime | None = None,
    thresholds: ReplayThresholds | None = None,
    *,
    latency_rows: int = 200,
    chunk: int = 1000,
) -> dict[str, Any]:
    """The replay report (JSON-ready; see the module docstring). `current=None` compares with the
    answers captured in the records (which should then all be from one model)."""
    thresholds = thresholds or ReplayThresholds()
    needed = set(candidate.manifest.feature_names) | (
        set(current.manifest.feature_names) if current else set()
    )
    usable = [r for r in records if not _needs(r, needed)]
    rows = _rows(usable)
    cand = _run_model(candidate, rows, chunk=chunk)
    reference_manifest = current.manifest if current else candidate.manifest
    if current is not None:
        ref = _run_model(current, rows, chunk=chunk)
    else:
        ref = _captured_side(usable, candidate.manifest)
    compared = [i for i in range(len(rows)) if i in ref.answers and i in cand.answers]
    sample = compared[: max(latency_rows, 0)]
    runtimes = [candidate] if current is None else [current, candidate]
    timings = _single_row_latency(runtimes, rows, sample)
    cand.single_ms = timings[-1]
    if current is not None:
        ref.single_ms = timings[0]
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "candidate": _ref(candidate.manifest),
        "current": _ref(current.manifest) if current else {"captured_answers_of": served_by(usable)},
        "rows": {
            "records": len(records),
            "skipped_redacted": len(records) - len(usable),
            "replayed": len(rows),
            "compared": len(compared),
            "current_refused": _refusals(ref.refused),
            "candidate_refused": _refusals(cand.refused),
            # what matters to callers: rows served today that the candidate would refuse
            "newly_refused": _refusals({i: p for i, p in cand.refused.items() if i not in ref.refused}),
        },
        "comparison": _compare(
            reference_manifest, candidate.manifest, ref, cand, compared, thresholds=thresholds
        ),
        "latency": {
            "current": _latency("current", ref, len(ref.answers)) if current else None,
            "candidate": _latency("candidate", cand, len(cand.answers)),
        },
        "thresholds": thresholds.to_dict(),
    }
    if current is not None:
        report["reproduced"] = _reproduced(usable, current.manifest, ref)
        lat = report["latency"]
        p50 = [lat[k]["single_row_p50_ms"] for k in ("current", "candidate")]
        p99 = [lat[k]["single_row_p99_ms"] for k in ("current", "candidate")]
        lat["ratio_p50"] = round(p50[1] / p50[0], 3) if None not in p50 and p50[0] else None
        lat["ratio_p99"] = round(p99[1] / p99[0], 3) if None not in p99 and p99[0] else None
    report["gate"] = gate(report, thresholds, reference_manifest)
    return report


def _captured_side(records: Sequence[Record], manifest: Manifest) -> _Side:
    """The answers production gave, as captured, in the candidate's vocabulary where they read."""
    side = _Side()
    out = manifest.output
    for i, r in enumerate(records):
        p = r.get("prediction")
        if not isinstance(p, dict):
            continue
        if isinstance(out, ClassificationOutput) and isinstance(p.get("label"), str):
            side.answers[i] = p
        elif isinstance(out, RegressionOutput):
            value = next((v for v in p.values() if type(v) in (int, float)), None)
            if value is not None:
                side.answers[i] = {out.name: value}
    return side


def _compare(
    ref_manifest: Manifest,
    cand_manifest: Manifest,
    ref: _Side,
    cand: _Side,
    compared: list[int],
    *,
    thresholds: ReplayThresholds,
) -> dict[str, Any]:
    a, b = ref_manifest.output, cand_manifest.output
    if isinstance(a, ClassificationOutput) and isinstance(b, ClassificationOutput):
        labels_ref = [str(ref.answers[i]["label"]) for i in compared]
        labels_cand = [str(cand.answers[i]["label"]) for i in compared]
        shift = []
        for i, label in zip(compared, labels_ref, strict=True):
            p_ref = ref.answers[i].get("probabilities") or {}
            p_cand = cand.answers[i].get("probabilities") or {}
            if label in p_ref and label in p_cand:
                shift.append(abs(float(p_cand[label]) - float(p_ref[label])))
        return _classification(labels_ref, labels_cand, list(a.labels), shift)
    if isinstance(a, RegressionOutput) and isinstance(b, RegressionOutput):
        values_ref = [float(ref.answers[i][a.name]) for i in compared]
        values_cand = [float(cand.answers[i][b.name]) for i in compared]
        baseline = ref_manifest.baselines.output
        numeric = baseline if isinstance(baseline, NumericBaseline) else None
        return _regression(values_ref, values_cand, numeric, abs_diff_limit(thresholds, ref_manifest))
    return {"kind": "incomparable", "current": a.kind, "candidate": b.kind}


def abs_diff_limit(thresholds: ReplayThresholds, manifest: Manifest) -> float | None:
    """The regression gate's limit on p95 |difference| (default: a tenth of the baseline's spread)."""
    if thresholds.max_abs_diff_p95 is not None:
        return thresholds.max_abs_diff_p95
    baseline = manifest.baselines.output
    return 0.1 * baseline.std_dev if isinstance(baseline, NumericBaseline) else None


def _reproduced(records: Sequence[Record], manifest: Manifest, ref: _Side) -> dict[str, Any]:
    """Whether re-running the current model gives what it answered live (its own captured rows)."""
    own = [i for i, r in enumerate(records) if r.get("model_sha256") == manifest.sha256 and i in ref.answers]
    out = manifest.output
    same = 0
    for i in own:
        live, again = records[i].get("prediction") or {}, ref.answers[i]
        if isinstance(out, ClassificationOutput):
            same += live.get("label") == again.get("label")
        else:
            value = live.get(out.name)
            if isinstance(value, int | float):
                same += abs(float(value) - float(again[out.name])) <= 1e-6
    return {"rows": len(own), "same_answer": same}


def gate(report: Mapping[str, Any], thresholds: ReplayThresholds, manifest: Manifest) -> dict[str, Any]:
    """Each check with its value and limit; passed only when every enabled check holds."""
    rows = report["rows"]
    comparison = report["comparison"]
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, limit: float | None, ok: bool | None) -> None:
        checks.append({"check": name, "value": value, "limit": limit, "passed": ok})

    compared = rows["compared"]
    check("rows compared", compared, thresholds.min_rows, compared >= thresholds.min_rows)
    served = rows["replayed"] - rows["current_refused"]["rows"]
    share = rows["newly_refused"]["rows"] / served if served else 0.0
    check(
        "refused by the candidate (share)",
        share,
        thresholds.max_refused_share,
        share <= thresholds.max_refused_share,
    )
    kind = comparison["kind"]
    if kind == "incomparable":
        check("output kinds comparable", None, None, False)
    drift = comparison.get("output_drift") or {}
    if kind == "classification":
        agreement = comparison["agreement"]
        limit = thresholds.min_agreement
        ok = None if limit is None or agreement is None else agreement >= limit
        check("label agreement", agreement, limit, ok)
    if kind == "regression":
        p95 = comparison["differences"].get("abs_quantiles", {}).get("p95")
        limit_d = abs_diff_limit(thresholds, manifest)
        check("p95 |difference|", p95, limit_d, None if limit_d is None or p95 is None else p95 <= limit_d)
    if kind != "incomparable":
        value = drift.get("psi")
        limit_p = thresholds.max_output_psi
        check("output PSI", value, limit_p, None if limit_p is None or value is None else value <= limit_p)
    ratio = report["latency"].get("ratio_p50")
    limit_r = thresholds.max_latency_ratio
    check(
        "latency ratio (p50)", ratio, limit_r, None if limit_r is None or ratio is None else ratio <= limit_r
    )
    failures = [c["check"] for c in checks if c["passed"] is False]
    return {"passed": not failures, "failures": failures, "checks": checks}


# -- the pre-traffic gate: recent capture through the new version's model -------------------------


@dataclass(frozen=True, slots=True)
class ReplayGateSettings:
    """The pre-traffic hook's replay (template.yaml PreTrafficReplay*): off unless rows > 0."""

    rows: int = 0  # newest captured rows replayed at most (0: no replay)
    bucket: str = ""
    prefix: str = "capture/"
    lookback: timedelta = timedelta(hours=24)
    min_rows: int = 20  # fewer captured rows than this: skipped, not failed (no capture yet)
    max_objects: int = 200
    thresholds: ReplayThresholds = field(default_factory=ReplayThresholds)

    @property
    def enabled(self) -> bool:
        return self.rows > 0 and bool(self.bucket)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplayGateSettings:
        """From ONNXLAMBDA_REPLAY_* and the capture location (onnxlambda.settings)."""
        return cls(
            rows=settings.get("ONNXLAMBDA_REPLAY_ROWS", env),
            bucket=settings.get("ONNXLAMBDA_CAPTURE_BUCKET", env),
            prefix=settings.get("ONNXLAMBDA_CAPTURE_PREFIX", env),
            lookback=timedelta(hours=settings.get("ONNXLAMBDA_REPLAY_LOOKBACK_HOURS", env)),
            min_rows=settings.get("REPLAY_MIN_ROWS", env),
            max_objects=settings.get("REPLAY_MAX_OBJECTS", env),
            thresholds=ReplayThresholds(
                max_refused_share=settings.get("REPLAY_MAX_REFUSED_SHARE", env),
                min_agreement=settings.get("ONNXLAMBDA_REPLAY_MIN_AGREEMENT", env),
                max_output_psi=settings.get("REPLAY_MAX_OUTPUT_PSI", env),
            ),
        )


@dataclass(frozen=True, slots=True)
class ReplayGateResult:
    passed: bool
    problems: list[str]
    summary: dict[str, Any]


def replay_gate(
    s3: S3Reader, candidate: ModelRuntime, settings: ReplayGateSettings, now: datetime
) -> ReplayGateResult:
    """Replay the newest captured rows of the serving model through the new version's model and
    compare with what production answered. Skipped (passed) when fewer than `min_rows` exist."""
    start = now - settings.lookback
    records, objects = read_recent_s3(
        s3,
        settings.bucket,
        settings.prefix,
        start,
        now,
        max_rows=settings.rows,
        max_objects=settings.max_objects,
    )
    # The reference is what the serving model answered: the most common sha256 in the window (rows
    # of an earlier, stopped canary of this very release are a minority and are left out).
    chosen = select(records.inferences, start=start, end=now)
    reference = served_by(chosen)
    chosen = [r for r in chosen if r.get("model_sha256") == reference][-settings.rows :]
    summary: dict[str, Any] = {
        "objects_read": objects,
        "rows": len(chosen),
        "reference_sha256": reference,
        "window": [start.isoformat(), now.isoformat()],
    }
    if len(chosen) < settings.min_rows:
        summary["skipped"] = f"{len(chosen)} captured rows (< {settings.min_rows}): nothing to replay yet"
        return ReplayGateResult(True, [], summary)
    report = replay(chosen, candidate, None, settings.thresholds, latency_rows=0)
    gate_result = report["gate"]
    comparison = report["comparison"]
    summary.update(
        compared=report["rows"]["compared"],
        newly_refused=report["rows"]["newly_refused"],
        agreement=comparison.get("agreement"),
        output_psi=(comparison.get("output_drift") or {}).get("psi"),
        checks=gate_result["checks"],
    )
    problems = [
        f"replay of {report['rows']['compared']} captured rows: {c['check']} {c['value']} "
        f"(limit {c['limit']})"
        for c in gate_result["checks"]
        if c["passed"] is False
    ]
    return ReplayGateResult(not problems, problems, summary)


__all__ = [
    "REPORT_SCHEMA",
    "ReplayGateResult",
    "ReplayGateSettings",
    "ReplayThresholds",
    "abs_diff_limit",
    "gate",
    "read_recent_s3",
    "replay",
    "replay_gate",
    "select",
    "served_by",
]
