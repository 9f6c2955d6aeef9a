"""Baselines are built by the same code that reads them: writer and monitor agree by construction."""

from __future__ import annotations

import numpy as np
import pytest

from onnxlambda.monitoring.baselines import categorical_baseline, numeric_baseline, sig
from onnxlambda.monitoring.drift import BinnedCounts


def test_a_reference_sample_counted_by_the_monitor_gives_the_baseline_counts_and_no_drift() -> None:
    # GIVEN a seeded reference sample with missing values, and its baseline
    rng = np.random.default_rng(3)
    values: list[float | None] = [float(v) for v in rng.lognormal(3.0, 0.7, 2_000)]
    values[::50] = [None] * len(values[::50])
    baseline = numeric_baseline(values)
    # WHEN the monitor's accumulator counts the very same sample against it
    counted = BinnedCounts(baseline)
    counted.add(np.array([np.nan if v is None else v for v in values]))
    # THEN it finds the baseline's counts and missing values exactly, hence zero drift
    assert counted.counts.tolist() == baseline.counts
    assert counted.missing == baseline.missing == 40
    assert counted.stat().psi == pytest.approx(0.0, abs=1e-12)


def test_cut_points_are_rounded_deduplicated_deciles_and_count_includes_missing() -> None:
    # GIVEN values 1..100 and two missing
    values: list[float | None] = [float(v) for v in range(1, 101)] + [None, None]
    baseline = numeric_baseline(values)
    # THEN the 9 interior deciles (linear interpolation) are the cut points, 10 bins of 10 values,
    # and `count` includes the 2 missing values that no bin holds
    assert baseline.cut_points == [sig(q) for q in np.quantile(np.arange(1, 101), np.arange(1, 10) / 10)]
    assert baseline.counts == [10] * 10
    assert (baseline.count, baseline.missing) == (102, 2)
    # AND a column with few distinct values gets fewer, deduplicated cut points
    assert numeric_baseline([1.0] * 50 + [2.0] * 50).cut_points == [1.0, 1.5, 2.0]


def test_a_column_with_no_value_has_no_numeric_baseline() -> None:
    with pytest.raises(ValueError, match="at least one non-missing value"):
        numeric_baseline([None, float("nan")])


def test_categorical_baseline_treats_none_and_empty_as_missing_like_the_readers() -> None:
    # GIVEN categories with None and "" (how string tensors carry a null)
    baseline = categorical_baseline(["b", "a", None, "b", ""])
    # THEN both are missing, the rest counted and sorted; the reader counts them the same way
    assert (baseline.count, baseline.missing, baseline.counts) == (5, 2, {"a": 1, "b": 2})
    counted = BinnedCounts(baseline)
    counted.add(["b", "a", None, "b", ""])
    assert counted.current() == baseline.counts
    assert counted.missing == baseline.missing
