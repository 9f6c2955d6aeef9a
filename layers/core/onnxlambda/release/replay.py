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

Which records are replayed: captured.py; the report's statistics: comparison.py; the pre-traffic
hook's gate over recent capture: replay_gate.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, NumericBaseline, RegressionOutput
from onnxlambda.monitoring.window import Record
from onnxlambda.release.captured import served_by
from onnxlambda.release.comparison import classification, percentile, refusals, regression
from onnxlambda.serving.dataplane import answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

REPORT_SCHEMA: Final = 1


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


def _latency(name: str, side: _Side, rows: int) -> dict[str, Any]:
    return {
        "model": name,
        "batch_ms": round(side.batch_ms, 3),
        "batch_ms_per_1000_rows": round(side.batch_ms / rows * 1000, 3) if rows else None,
        "single_row_p50_ms": round(percentile(side.single_ms, 50), 4) if side.single_ms else None,
        "single_row_p99_ms": round(percentile(side.single_ms, 99), 4) if side.single_ms else None,
        "single_row_samples": len(side.single_ms),
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
            "current_refused": refusals(ref.refused),
            "candidate_refused": refusals(cand.refused),
            # what matters to callers: rows served today that the candidate would refuse
            "newly_refused": refusals({i: p for i, p in cand.refused.items() if i not in ref.refused}),
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
        return classification(labels_ref, labels_cand, list(a.labels), shift)
    if isinstance(a, RegressionOutput) and isinstance(b, RegressionOutput):
        values_ref = [float(ref.answers[i][a.name]) for i in compared]
        values_cand = [float(cand.answers[i][b.name]) for i in compared]
        baseline = ref_manifest.baselines.output
        numeric = baseline if isinstance(baseline, NumericBaseline) else None
        return regression(values_ref, values_cand, numeric, abs_diff_limit(thresholds, ref_manifest))
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


__all__ = ["REPORT_SCHEMA", "ReplayThresholds", "abs_diff_limit", "gate", "replay"]
