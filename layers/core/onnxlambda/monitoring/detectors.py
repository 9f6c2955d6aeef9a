"""Drift detectors on binned counts against the manifest's baseline.

Everything here works on counts per bin, so counts from many requests or batches add up and a
window can be assembled from parts. Numeric values are binned with the manifest's rule
(`numpy.searchsorted(cut_points, x, side="right")`, len(cut_points) + 1 bins); categorical values
by category, with categories the baseline never saw kept as their own bins. Missing values are
left out of drift (input health reports the missing share in real time).

Statistics (all symmetric in spirit, computed on bin shares with 0.5 pseudo-counts so an empty bin
never yields an infinite value):

    psi           population stability index, sum (p - q) * ln(p / q)
    js_distance   Jensen-Shannon distance, base 2, in [0, 1]
    chi2, p_value two-sample chi-square test of homogeneity on the raw counts
    linf          L-infinity distance between shares (largest change of any one bin)

Decisions scale with the window: a fixed PSI threshold false-alarms on small windows (PSI of two
samples of the same distribution is about (1/n + 1/m) * chi2(k - 1)). So

    numeric      drift when PSI > max(psi_floor, (1/n + 1/m) * chi2.ppf(1 - alpha, k - 1))
    categorical  drift when the chi-square p-value < alpha and L-infinity >= linf_floor

with n the window's count, m the baseline's count and k the number of bins. The floors keep a
statistically significant but tiny change in a very large window from paging anyone; alpha is
per test (divide the family alpha by the number of tests: `Thresholds.for_tests`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from onnxlambda.manifest import CategoricalBaseline, NumericBaseline

PSEUDO_COUNT = 0.5
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-test false-alarm rate and the practical-significance floors."""

    alpha: float = 0.001
    psi_floor: float = 0.1
    linf_floor: float = 0.05
    min_samples: int = 100

    @classmethod
    def for_tests(
        cls, tests: int, family_alpha: float = 0.01, *, min_samples: int = 100, psi_floor: float = 0.1
    ) -> Thresholds:
        """Bonferroni: `tests` decisions per window share `family_alpha`."""
        return cls(alpha=family_alpha / max(tests, 1), psi_floor=psi_floor, min_samples=min_samples)


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One feature (or the output) in one window against its baseline."""

    kind: Literal["numeric", "categorical"]
    bins: list[str]
    baseline_counts: list[int]
    current_counts: list[int]
    n: int
    psi: float
    js_distance: float
    chi2: float
    p_value: float
    linf: float
    psi_threshold: float
    # None when the window holds fewer than `min_samples` values: too few to decide.
    drift: bool | None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "bins": self.bins,
            "baseline_counts": self.baseline_counts,
            "current_counts": self.current_counts,
            "n": self.n,
            "psi": self.psi,
            "js_distance": self.js_distance,
            "chi2": self.chi2,
            "p_value": self.p_value,
            "linf": self.linf,
            "psi_threshold": self.psi_threshold,
            "drift": self.drift,
        }


# -- binning --------------------------------------------------------------------------------


def bin_numeric(values: Iterable[float | None], cut_points: Sequence[float]) -> list[int]:
    """Counts per baseline bin of the non-missing, finite values (the manifest's bin rule)."""
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    idx = np.searchsorted(np.asarray(cut_points, dtype=np.float64), arr, side="right")
    return np.bincount(idx, minlength=len(cut_points) + 1).astype(int).tolist()


def count_categories(values: Iterable[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return counts


def numeric_bin_labels(cut_points: Sequence[float]) -> list[str]:
    edges = [f"{c:g}" for c in cut_points]
    if not edges:
        return ["all"]
    return [f"< {edges[0]}"] + [f"[{a}, {b})" for a, b in itertools.pairwise(edges)] + [f">= {edges[-1]}"]


# -- statistics -----------------------------------------------------------------------------


def _shares(counts: FloatArray) -> FloatArray:
    smoothed = counts + PSEUDO_COUNT
    return smoothed / smoothed.sum()


def psi(baseline: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index between two count vectors over the same bins."""
    q, p = _shares(np.asarray(baseline, float)), _shares(np.asarray(current, float))
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(baseline: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2, so 0 = same, 1 = disjoint) between two count vectors."""
    q, p = _shares(np.asarray(baseline, float)), _shares(np.asarray(current, float))
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(math.sqrt(max(float(divergence), 0.0)))


def linf(baseline: Sequence[float], current: Sequence[float]) -> float:
    """Largest absolute change of one bin's share (raw shares, no smoothing)."""
    b, c = np.asarray(baseline, float), np.asarray(current, float)
    if b.sum() == 0 or c.sum() == 0:
        return 0.0
    return float(np.max(np.abs(c / c.sum() - b / b.sum())))


def chi2_homogeneity(baseline: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample chi-square test of homogeneity: (statistic, p-value). Empty bins are dropped."""
    table = np.vstack([np.asarray(baseline, float), np.asarray(current, float)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, chi2_sf(stat, table.shape[1] - 1)


def psi_critical(n: int, m: int, bins: int, alpha: float) -> float:
    """The PSI two same-distribution samples of sizes n and m exceed with probability ~alpha."""
    if n <= 0 or m <= 0 or bins < 2:
        return math.inf
    return (1.0 / n + 1.0 / m) * chi2_ppf(1.0 - alpha, bins - 1)


# -- chi-square distribution without scipy (not in the Lambda layer) ------------------------


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


# -- comparing a window with a baseline -----------------------------------------------------


def compare_numeric(
    baseline: NumericBaseline, values: Iterable[float | None], thresholds: Thresholds
) -> DriftResult:
    return compare_numeric_counts(baseline, bin_numeric(values, baseline.cut_points), thresholds)


def compare_numeric_counts(
    baseline: NumericBaseline, current: Sequence[int], thresholds: Thresholds
) -> DriftResult:
    if len(current) != len(baseline.counts):
        raise ValueError(f"expected {len(baseline.counts)} bin counts, got {len(current)}")
    n, m = int(sum(current)), int(sum(baseline.counts))
    chi2, p_value = chi2_homogeneity(baseline.counts, current)
    value = psi(baseline.counts, current)
    threshold = max(thresholds.psi_floor, psi_critical(n, m, len(current), thresholds.alpha))
    return DriftResult(
        kind="numeric",
        bins=numeric_bin_labels(baseline.cut_points),
        baseline_counts=list(baseline.counts),
        current_counts=[int(c) for c in current],
        n=n,
        psi=value,
        js_distance=js_distance(baseline.counts, current),
        chi2=chi2,
        p_value=p_value,
        linf=linf(baseline.counts, current),
        psi_threshold=threshold,
        drift=None if n < thresholds.min_samples else value > threshold,
    )


def compare_categorical(
    baseline: CategoricalBaseline, values: Iterable[str | None], thresholds: Thresholds
) -> DriftResult:
    return compare_categorical_counts(baseline, count_categories(values), thresholds)


def compare_categorical_counts(
    baseline: CategoricalBaseline, current: Mapping[str, int], thresholds: Thresholds
) -> DriftResult:
    # Baseline categories first, in their order; categories new in this window after them.
    bins = list(baseline.counts) + sorted(set(current) - set(baseline.counts))
    base = [baseline.counts.get(b, 0) for b in bins]
    cur = [int(current.get(b, 0)) for b in bins]
    n, m = sum(cur), sum(base)
    chi2, p_value = chi2_homogeneity(base, cur)
    distance = linf(base, cur)
    return DriftResult(
        kind="categorical",
        bins=bins,
        baseline_counts=base,
        current_counts=cur,
        n=n,
        psi=psi(base, cur),
        js_distance=js_distance(base, cur),
        chi2=chi2,
        p_value=p_value,
        linf=distance,
        psi_threshold=max(thresholds.psi_floor, psi_critical(n, m, len(bins), thresholds.alpha)),
        drift=None
        if n < thresholds.min_samples
        else (p_value < thresholds.alpha and distance >= thresholds.linf_floor),
    )


__all__ = [
    "DriftResult",
    "Thresholds",
    "bin_numeric",
    "chi2_homogeneity",
    "chi2_ppf",
    "chi2_sf",
    "compare_categorical",
    "compare_categorical_counts",
    "compare_numeric",
    "compare_numeric_counts",
    "count_categories",
    "js_distance",
    "linf",
    "psi",
    "psi_critical",
]
