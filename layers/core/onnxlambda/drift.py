"""Drift statistics against the manifest's baselines: binning, PSI and Jensen-Shannon distance.

Everything here works on *bin counts over the baseline's fixed bins*, so statistics aggregate by
addition: count per chunk, per file or per request, sum the counts, compute the statistic once.
Numeric values fall in bin `numpy.searchsorted(cut_points, x, side="right")` (the manifest's rule);
nulls and NaN are counted apart as `missing` and do not enter the distribution. Categorical values
outside the baseline's categories share one extra "unseen" bin, so a new category shows as drift.

Conventions: PSI = sum((a - e) * ln(a / e)) over proportions, each proportion floored at `EPSILON`
so empty bins stay finite; JS is the Jensen-Shannon *distance* (square root of the divergence,
base 2, in [0, 1]). Common reading: PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant; JS
distance > 0.1 is the usual alarm. Both depend on the sample size (see `min_count`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from onnxlambda.manifest import CategoricalBaseline, NumericBaseline

EPSILON = 1e-4
UNSEEN = "__unseen__"

Counts = npt.NDArray[np.int64]
BaselineStats = NumericBaseline | CategoricalBaseline


def numeric_bins(cut_points: list[float] | npt.NDArray[np.float64], values: npt.ArrayLike) -> Counts:
    """Counts per bin (len(cut_points) + 1) of the finite values; NaN/None are left out."""
    cuts = np.asarray(cut_points, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[~np.isnan(x)]
    idx = np.searchsorted(cuts, x, side="right")
    return np.bincount(idx, minlength=len(cuts) + 1).astype(np.int64)


def categorical_bins(categories: list[str], values: Iterable[object]) -> tuple[Counts, int]:
    """Counts per category (in `categories` order) plus one trailing 'unseen' bin; and the nulls.

    None and "" count as missing (the validator's string tensors carry nulls as "")."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    tally = Counter(values)  # counted in C; the loop below runs once per distinct value
    missing = tally.pop(None, 0) + tally.pop("", 0)
    for value, n in tally.items():
        counts[index.get(str(value), len(categories))] += n
    return counts, missing


def _proportions(counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    p = c / total if total > 0 else np.zeros_like(c)
    p = np.maximum(p, EPSILON)
    return np.asarray(p / p.sum(), dtype=np.float64)


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index between two count (or proportion) vectors over the same bins."""
    e, a = _proportions(expected), _proportions(actual)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} vs {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0 if e.sum() == a.sum() else 1.0
    p, q = e / e.sum(), a / a.sum()
    m = (p + q) / 2

    def kl(x: npt.NDArray[np.float64]) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


@dataclass(frozen=True, slots=True)
class DriftStat:
    """One column's drift against its baseline."""

    psi: float | None  # None when there were no non-null values to compare
    js: float | None
    count: int  # non-null values binned
    missing: int
    missing_rate_baseline: float
    missing_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": None if self.psi is None else round(self.psi, 6),
            "js": None if self.js is None else round(self.js, 6),
            "count": self.count,
            "missing": self.missing,
            "missing_rate": None if self.missing_rate is None else round(self.missing_rate, 6),
            "missing_rate_baseline": round(self.missing_rate_baseline, 6),
        }


@dataclass(slots=True)
class BinnedCounts:
    """Running bin counts for one column against one baseline; add chunks, merge partials."""

    baseline: BaselineStats
    counts: Counts = field(init=False)
    missing: int = 0

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.expected()), dtype=np.int64)

    def expected(self) -> Counts:
        """The baseline's counts, over the same bins as `counts` (categoricals: + unseen = 0)."""
        b = self.baseline
        if isinstance(b, NumericBaseline):
            return np.asarray(b.counts, dtype=np.int64)
        return np.asarray([*b.counts.values(), 0], dtype=np.int64)

    def add(self, values: npt.NDArray[Any] | list[Any]) -> None:
        """Count a chunk of values (numeric: None or NaN is missing; categorical: None or "")."""
        b = self.baseline
        if isinstance(b, NumericBaseline):
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
                x = values.astype(np.float64, copy=False).reshape(-1)
            else:
                x = np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
            self.missing += int(np.isnan(x).sum())
            self.counts += numeric_bins(b.cut_points, x)
        else:
            flat = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else values
            counts, missing = categorical_bins(list(b.counts), flat)
            self.counts += counts
            self.missing += missing

    def merge(self, other: BinnedCounts) -> None:
        if other.counts.shape != self.counts.shape:
            raise ValueError("cannot merge counts over different bins")
        self.counts += other.counts
        self.missing += other.missing

    def stat(self) -> DriftStat:
        b = self.baseline
        n = int(self.counts.sum())
        total = n + self.missing
        base_rate = b.missing / b.count if b.count else 0.0
        if n == 0:
            return DriftStat(None, None, 0, self.missing, base_rate, self.missing / total if total else None)
        expected = self.expected()
        return DriftStat(
            psi=psi(expected, self.counts),
            js=js_distance(expected, self.counts),
            count=n,
            missing=self.missing,
            missing_rate_baseline=base_rate,
            missing_rate=self.missing / total,
        )


def min_count(bins: int = 10) -> int:
    """Rule of thumb below which PSI's no-drift noise alone exceeds 0.1 (about 20 values per bin)."""
    return 20 * bins


__all__ = [
    "EPSILON",
    "UNSEEN",
    "BinnedCounts",
    "DriftStat",
    "categorical_bins",
    "js_distance",
    "min_count",
    "numeric_bins",
    "psi",
]
