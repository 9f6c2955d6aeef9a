"""The statistics of a replay report: refusals by code and field, label agreement and the flip
matrix, the distribution of regression differences, and output drift between the two models on
the same rows (the project's own PSI and Jensen-Shannon distance, onnxlambda.monitoring.drift).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import NumericBaseline
from onnxlambda.monitoring.drift import js_distance, numeric_bin_labels, numeric_bins, psi

QUANTILES: Final = (1, 5, 25, 50, 75, 95, 99)


def refusals(refused: Mapping[int, list[FieldError]]) -> dict[str, Any]:
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


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def classification(
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
        "output_drift": output_drift(seen, ref_counts, cand_counts),
    }


def regression(
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
        "histogram": histogram(d),
        "output_drift": output_drift(
            numeric_bin_labels(cuts),
            numeric_bins(cuts, ref).tolist(),
            numeric_bins(cuts, cand).tolist(),
        ),
    }
    return out


def histogram(d: np.ndarray[Any, Any], bins: int = 15) -> dict[str, Any]:
    if not d.size:
        return {"edges": [], "counts": []}
    lo, hi = float(d.min()), float(d.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(d, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def output_drift(bins: list[str], ref: list[int], cand: list[int]) -> dict[str, Any]:
    has = sum(ref) > 0 and sum(cand) > 0
    return {
        "bins": bins,
        "current_counts": [int(x) for x in ref],
        "candidate_counts": [int(x) for x in cand],
        # PSI and JS of the candidate's outputs against the current model's on the same rows.
        "psi": psi(ref, cand) if has else None,
        "js_distance": js_distance(ref, cand) if has else None,
    }


__all__ = ["QUANTILES", "classification", "histogram", "output_drift", "percentile", "refusals", "regression"]
