"""Drift against the manifest's baselines: the bin rule and the drift statistics, in one place.

Batch summaries (onnxlambda.batch.scoring), the scheduled monitor (onnxlambda.monitoring.detectors, which
adds only the window-size-aware *decisions*) and the drift report all bin and compute through this
module, so the same counts give the same numbers everywhere.

Binning. Everything works on *bin counts over the baseline's fixed bins*, so statistics aggregate
by addition: count per chunk, file or request, sum the counts, compute the statistic once.
- numeric: value x falls in bin `numpy.searchsorted(cut_points, x, side="right")` (the manifest's
  rule, len(cut_points) + 1 bins); None, NaN and +-inf are missing and do not enter the
  distribution (the validator refuses non-finite values anyway);
- categorical: one bin per baseline category, in the baseline's order; None and "" are missing
  (string tensors carry nulls as ""). A category the baseline never saw is drift: the monitor
  keeps each new category as its own bin after the baseline's; a batch accumulator, which must
  stay bounded over millions of rows, folds them into one `UNSEEN` bin and reports it under that
  name, so the same counts reach both paths.

Statistics, on two count vectors over the same bins:

    psi           population stability index, sum (p - q) * ln(p / q)
    js_distance   Jensen-Shannon distance, sqrt of the JS divergence in bits: 0 = same, 1 = disjoint
    linf          largest absolute change of one bin's share (raw shares)
    chi2_homogeneity  two-sample chi-square test of homogeneity on the raw counts

Choices, and why (they used to differ between the batch and the monitor code):
- Smoothing: PSI and JS use shares with a pseudo-count of 0.5 added to every bin (the
  Jeffreys / Krichevsky-Trofimov estimator), after dropping bins that are empty on *both*
  sides (they carry no evidence). The alternative, flooring shares at a constant such as 1e-4,
  lets one empty bin dominate: a baseline share of 0.1 against 1e-4 alone gives PSI 0.69,
  "significant drift", and the value depends on the arbitrary floor. The pseudo-count keeps
  every value finite and moves a share by at most 0.5 / n; it is also what the monitor's
  window-size-aware thresholds and their measured false-alarm rates were calibrated with.
- Log base: PSI uses the natural log, the convention behind the usual reading (< 0.1 stable,
  0.1-0.25 moderate, > 0.25 significant) and behind the approximation the monitor's threshold
  rests on, PSI ~ (1/n + 1/m) * chi2(k - 1) for two samples of one distribution. JS uses base 2,
  so the distance lies in [0, 1], the scale of the common 0.1 alarm line (Evidently, NannyML).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.manifest import CategoricalBaseline, NumericBaseline

PSEUDO_COUNT = 0.5
UNSEEN = "__unseen__"

Counts = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
CountVector = Sequence[float] | npt.NDArray[Any]
BaselineStats = NumericBaseline | CategoricalBaseline


# -- binning ------------------------------------------------------------------------------------


def numeric_bins(
    cut_points: Sequence[float] | FloatArray, values: Iterable[float | None] | npt.ArrayLike
) -> Counts:
    """Counts per bin (len(cut_points) + 1) of the finite values; None, NaN and +-inf are left out."""
    cuts = np.asarray(cut_points, dtype=np.float64)
    arr = values if isinstance(values, np.ndarray | list | tuple) else list(values)  # type: ignore[arg-type]
    x = np.asarray(arr, dtype=np.float64).reshape(-1)  # None -> NaN under a float dtype
    x = x[np.isfinite(x)]
    idx = np.searchsorted(cuts, x, side="right")
    return np.bincount(idx, minlength=len(cuts) + 1).astype(np.int64)


def _tally(values: Iterable[object]) -> tuple[Counter[str], int]:
    raw = Counter(values)  # counted in C; the loop below runs once per distinct value
    missing = raw.pop(None, 0) + raw.pop("", 0)
    tally: Counter[str] = Counter()
    for value, n in raw.items():
        tally[str(value)] += n
    return tally, missing


def count_categories(values: Iterable[str | None]) -> dict[str, int]:
    """Count per category of the non-missing values (None and "" are missing)."""
    return dict(_tally(values)[0])


def categorical_bins(categories: list[str], values: Iterable[object]) -> tuple[Counts, int]:
    """Counts per category (in `categories` order) plus one trailing `UNSEEN` bin; and the nulls."""
    tally, missing = _tally(values)
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    for value, n in tally.items():
        counts[index.get(value, len(categories))] += n
    return counts, missing


def numeric_bin_labels(cut_points: Sequence[float]) -> list[str]:
    edges = [f"{c:g}" for c in cut_points]
    if not edges:
        return ["all"]
    return [f"< {edges[0]}"] + [f"[{a}, {b})" for a, b in itertools.pairwise(edges)] + [f">= {edges[-1]}"]


# -- statistics ---------------------------------------------------------------------------------


def _vectors(expected: CountVector, actual: CountVector) -> tuple[FloatArray, FloatArray]:
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} vs {a.shape}")
    return e, a


def smoothed_shares(expected: CountVector, actual: CountVector) -> tuple[FloatArray, FloatArray]:
    """Shares with `PSEUDO_COUNT` per bin, over the bins not empty on both sides."""
    e, a = _vectors(expected, actual)
    keep = (e + a) > 0
    e, a = e[keep] + PSEUDO_COUNT, a[keep] + PSEUDO_COUNT
    if e.size == 0:
        return e, a
    return e / e.sum(), a / a.sum()


def psi(expected: CountVector, actual: CountVector) -> float:
    """Population stability index between two *count* vectors over the same bins (natural log)."""
    q, p = smoothed_shares(expected, actual)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(expected: CountVector, actual: CountVector) -> float:
    """Jensen-Shannon distance (base 2: 0 = same, 1 = disjoint) between two count vectors."""
    q, p = smoothed_shares(expected, actual)
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(math.sqrt(max(float(divergence), 0.0)))


def linf(expected: CountVector, actual: CountVector) -> float:
    """Largest absolute change of one bin's share (raw shares, no smoothing)."""
    b, c = _vectors(expected, actual)
    if b.sum() == 0 or c.sum() == 0:
        return 0.0
    return float(np.max(np.abs(c / c.sum() - b / b.sum())))


def chi2_homogeneity(expected: CountVector, actual: CountVector) -> tuple[float, float]:
    """Two-sample chi-square test of homogeneity: (statistic, p-value). Empty bins are dropped."""
    table = np.vstack(_vectors(expected, actual))
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    outer = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - outer) ** 2 / outer))
    return stat, chi2_sf(stat, table.shape[1] - 1)


# -- the chi-square distribution without scipy (not in the Lambda layer) ------------------------


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series / continued fraction)."""
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Lentz's continued fraction
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for X ~ chi-square(dof)."""
    return _gamma_q(dof / 2.0, x / 2.0)


def chi2_ppf(q: float, dof: int) -> float:
    """The x with P(X <= x) = q for X ~ chi-square(dof), by bisection on chi2_sf."""
    target = 1.0 - q
    lo, hi = 0.0, max(10.0, 10.0 * dof)
    while chi2_sf(hi, dof) > target:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if chi2_sf(mid, dof) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# -- a running accumulator (batch files) --------------------------------------------------------


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
        # psi and js unrounded: the drift report recomputes them from the counts and must agree.
        return {
            "psi": self.psi,
            "js": self.js,
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
        """Count a chunk of values (numeric: None, NaN or +-inf is missing; categorical: None or "")."""
        b = self.baseline
        if isinstance(b, NumericBaseline):
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
                x = values.astype(np.float64, copy=False).reshape(-1)
            else:
                x = np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
            self.missing += int(x.size - np.isfinite(x).sum())
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

    def current(self) -> list[int] | dict[str, int]:
        """The counts in the form the monitor's detectors and the drift report take: numeric, one
        count per baseline bin; categorical, {category: count} with new categories under
        `UNSEEN` (present only when there were any)."""
        b = self.baseline
        values = [int(c) for c in self.counts]
        if isinstance(b, NumericBaseline):
            return values
        out = dict(zip(b.counts, values[:-1], strict=True))
        if values[-1]:
            out[UNSEEN] = values[-1]
        return out

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
    "PSEUDO_COUNT",
    "UNSEEN",
    "BinnedCounts",
    "DriftStat",
    "categorical_bins",
    "chi2_homogeneity",
    "chi2_ppf",
    "chi2_sf",
    "count_categories",
    "js_distance",
    "linf",
    "min_count",
    "numeric_bin_labels",
    "numeric_bins",
    "psi",
    "smoothed_shares",
]
