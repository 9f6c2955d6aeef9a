"""Drift decisions for one monitoring window, on binned counts against the manifest's baseline.

Binning and the statistics (PSI, Jensen-Shannon distance, chi-square, L-infinity, their smoothing
and log bases) live in `onnxlambda.monitoring.drift`, the one implementation the batch summaries use too;
they are re-exported here for the monitor's callers. This module adds what only a monitor needs:
categories new in the window kept as their own bins, and decisions that scale with the window.

Decisions scale with the window: a fixed PSI threshold false-alarms on small windows (PSI of two
samples of the same distribution is about (1/n + 1/m) * chi2(k - 1)). So

    numeric      drift when PSI > max(psi_floor, (1/n + 1/m) * chi2.ppf(1 - alpha, k - 1))
    categorical  drift when the chi-square p-value < alpha and L-infinity >= linf_floor

with n the window's count, m the baseline's count and k the number of bins. The floors keep a
statistically significant but tiny change in a very large window from paging anyone; alpha is
per test (divide the family alpha by the number of tests: `Thresholds.for_tests`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from onnxlambda.contract.manifest import CategoricalBaseline, NumericBaseline
from onnxlambda.monitoring.drift import (
    chi2_homogeneity,
    chi2_ppf,
    chi2_sf,
    count_categories,
    js_distance,
    linf,
    numeric_bin_labels,
    numeric_bins,
    psi,
)


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


def psi_critical(n: int, m: int, bins: int, alpha: float) -> float:
    """The PSI two same-distribution samples of sizes n and m exceed with probability ~alpha."""
    if n <= 0 or m <= 0 or bins < 2:
        return math.inf
    return (1.0 / n + 1.0 / m) * chi2_ppf(1.0 - alpha, bins - 1)


# -- comparing a window with a baseline -----------------------------------------------------


def compare_numeric(
    baseline: NumericBaseline, values: Iterable[float | None], thresholds: Thresholds
) -> DriftResult:
    return compare_numeric_counts(baseline, numeric_bins(baseline.cut_points, values).tolist(), thresholds)


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
    new = {c for c, k in current.items() if k > 0} - set(baseline.counts)
    bins = list(baseline.counts) + sorted(new)
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
    "chi2_homogeneity",
    "chi2_ppf",
    "chi2_sf",
    "compare_categorical",
    "compare_categorical_counts",
    "compare_numeric",
    "compare_numeric_counts",
    "js_distance",
    "linf",
    "psi",
    "psi_critical",
]
