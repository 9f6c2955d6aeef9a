"""Drift statistics: the bin rule, PSI and Jensen-Shannon on seeded data with known shifts."""

from __future__ import annotations

import numpy as np
import pytest

from onnxlambda.drift import BinnedCounts, categorical_bins, js_distance, numeric_bins, psi
from onnxlambda.manifest import CategoricalBaseline, NumericBaseline


def numeric_baseline(reference: np.ndarray, bins: int = 10) -> NumericBaseline:
    """A baseline built the manifest's way: interior decile cut points and counts per bin."""
    cuts = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = numeric_bins(cuts, reference)
    return NumericBaseline(
        count=len(reference),
        missing=0,
        mean=float(reference.mean()),
        std_dev=float(reference.std()),
        min=float(reference.min()),
        max=float(reference.max()),
        cut_points=cuts.tolist(),
        counts=counts.tolist(),
    )


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return np.random.default_rng(7).normal(50.0, 10.0, 5_000)


def test_bin_rule_is_searchsorted_right_and_skips_nan() -> None:
    # GIVEN cut points [1, 2] (three bins) and values on, between and beyond the edges, plus NaN
    counts = numeric_bins([1.0, 2.0], [0.5, 1.0, 1.5, 2.0, 9.0, np.nan])
    # THEN a value equal to a cut point falls in the bin to its right; NaN is not binned
    assert counts.tolist() == [1, 2, 2]


def test_identical_distributions_have_zero_psi_and_js() -> None:
    counts = [10, 20, 30, 40]
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(counts, counts) == pytest.approx(0.0, abs=1e-7)


def test_psi_matches_the_textbook_formula() -> None:
    # GIVEN two distributions over the same bins
    e, a = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.25, 0.25])
    # THEN PSI is sum((a - e) * ln(a / e)) and JS is symmetric and within [0, 1]
    assert psi(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert js_distance(e, a) == pytest.approx(js_distance(a, e))
    assert 0 < js_distance(e, a) < 1
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_same_distribution_sample_does_not_drift(reference: np.ndarray) -> None:
    # GIVEN a baseline from seeded reference data and a fresh sample of the same distribution
    acc = BinnedCounts(numeric_baseline(reference))
    acc.add(np.random.default_rng(8).normal(50.0, 10.0, 5_000))
    stat = acc.stat()
    # THEN both statistics stay well under the usual alarm lines (PSI 0.1, JS 0.1)
    assert stat.psi is not None
    assert stat.psi < 0.02
    assert stat.js is not None
    assert stat.js < 0.05


@pytest.mark.parametrize(
    ("shift", "scale"),
    [(50.0, 1.0), (-50.0, 1.0), (0.0, 5.0)],
    ids=["mean+5sd", "mean-5sd", "scale x5"],
)
def test_known_shifts_drift(reference: np.ndarray, shift: float, scale: float) -> None:
    # GIVEN the reference distribution shifted by 5 standard deviations, or spread 5 times wider
    acc = BinnedCounts(numeric_baseline(reference))
    sample = 50.0 + shift + scale * np.random.default_rng(9).normal(0.0, 10.0, 2_000)
    acc.add(sample)
    stat = acc.stat()
    # THEN PSI is "significant" (> 0.25) and JS distance over its 0.1 alarm line
    assert stat.psi is not None
    assert stat.psi > 0.25
    assert stat.js is not None
    assert stat.js > 0.1


def test_no_drift_false_alarm_rate_is_low_at_1000_rows(reference: np.ndarray) -> None:
    # GIVEN 200 seeded no-drift samples of 1,000 rows each
    baseline = numeric_baseline(reference)
    rng = np.random.default_rng(10)
    values = []
    for _ in range(200):
        acc = BinnedCounts(baseline)
        acc.add(rng.normal(50.0, 10.0, 1_000))
        values.append(acc.stat().psi)
    # THEN PSI > 0.1 (the "moderate drift" line) is a rare false alarm, measured not assumed
    assert np.mean(np.asarray(values) > 0.1) < 0.05


def test_a_new_category_drifts_and_nulls_count_apart() -> None:
    # GIVEN a categorical baseline and a sample where a quarter of the values are a new category
    baseline = CategoricalBaseline(count=100, missing=0, counts={"a": 50, "b": 50})
    acc = BinnedCounts(baseline)
    acc.add(["a"] * 375 + ["b"] * 375 + ["zzz"] * 250 + [None] * 10 + [""] * 5)
    stat = acc.stat()
    # THEN the unseen bin carries the new category and the drift is significant
    assert acc.counts.tolist() == [375, 375, 250]
    assert stat.missing == 15
    assert stat.psi is not None
    assert stat.psi > 0.25
    # AND the same proportions as the baseline do not drift
    same = BinnedCounts(baseline)
    same.add(["a", "b"] * 500)
    assert same.stat().psi == pytest.approx(0.0, abs=1e-9)


def test_counts_aggregate_by_addition(reference: np.ndarray) -> None:
    # GIVEN one sample counted whole, and the same sample counted in three chunks and merged
    baseline = numeric_baseline(reference)
    sample = np.random.default_rng(11).normal(55.0, 10.0, 3_000)
    whole = BinnedCounts(baseline)
    whole.add(sample)
    merged = BinnedCounts(baseline)
    for part in np.array_split(sample, 3):
        chunk = BinnedCounts(baseline)
        chunk.add(part)
        merged.merge(chunk)
    # THEN counts and statistics are identical
    assert merged.counts.tolist() == whole.counts.tolist()
    assert merged.stat() == whole.stat()


def test_numeric_nulls_are_missing_not_binned() -> None:
    baseline = NumericBaseline(
        count=10, missing=1, mean=0, std_dev=1, min=-1, max=1, cut_points=[0.0], counts=[4, 5]
    )
    acc = BinnedCounts(baseline)
    acc.add([None, -0.5, 0.5, None])
    assert acc.counts.tolist() == [1, 1]
    stat = acc.stat()
    assert stat.missing == 2
    assert stat.missing_rate == pytest.approx(0.5)
    assert stat.missing_rate_baseline == pytest.approx(0.1)


def test_no_values_means_no_statistic() -> None:
    acc = BinnedCounts(CategoricalBaseline(count=1, missing=0, counts={"a": 1}))
    stat = acc.stat()
    assert stat.psi is None
    assert stat.js is None
    assert stat.count == 0


def test_categorical_bins_order_and_unseen() -> None:
    counts, missing = categorical_bins(["x", "y"], ["y", "y", "q", None])
    assert counts.tolist() == [0, 2, 1]
    assert missing == 1
