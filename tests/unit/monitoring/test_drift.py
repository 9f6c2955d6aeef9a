"""Drift statistics: the bin rule, PSI and Jensen-Shannon on seeded data with known shifts, and the
same numbers from the batch accumulator and the monitor's detectors for the same counts."""

from __future__ import annotations

import numpy as np
import pytest

from onnxlambda.contract.manifest import CategoricalBaseline, NumericBaseline
from onnxlambda.monitoring.detectors import (
    Thresholds,
    compare_categorical,
    compare_categorical_counts,
    compare_numeric,
    compare_numeric_counts,
)
from onnxlambda.monitoring.drift import (
    PSEUDO_COUNT,
    UNSEEN,
    BinnedCounts,
    categorical_bins,
    js_distance,
    numeric_bins,
    psi,
)
from tests.unit.baselines import numeric_baseline


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return np.random.default_rng(7).normal(50.0, 10.0, 5_000)


def test_bin_rule_is_searchsorted_right_and_skips_missing() -> None:
    # GIVEN cut points [1, 2] (three bins) and values on, between and beyond the edges, plus
    # NaN, None and infinities
    values = [0.5, 1.0, 1.5, 2.0, 9.0, np.nan, None, np.inf, -np.inf]
    # THEN a value equal to a cut point falls in the bin to its right; no missing or non-finite
    # value is binned, whether given as a list, a generator or an array
    assert numeric_bins([1.0, 2.0], values).tolist() == [1, 2, 2]
    assert numeric_bins([1.0, 2.0], (v for v in values)).tolist() == [1, 2, 2]
    assert numeric_bins([1.0, 2.0], np.array(values, dtype=np.float64)).tolist() == [1, 2, 2]


def test_identical_distributions_have_zero_psi_and_js() -> None:
    counts = [10, 20, 30, 40]
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(counts, counts) == pytest.approx(0.0, abs=1e-7)


def test_psi_and_js_are_the_textbook_formulas_on_shares_with_half_a_count_per_bin() -> None:
    # GIVEN two count vectors over the same bins
    e, a = np.array([250, 250, 500]), np.array([500, 250, 250])
    q, p = (e + PSEUDO_COUNT) / (e + PSEUDO_COUNT).sum(), (a + PSEUDO_COUNT) / (a + PSEUDO_COUNT).sum()
    # THEN PSI is sum((p - q) * ln(p / q)) and JS the square root of the base-2 JS divergence
    assert psi(e, a) == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-12)
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    assert js_distance(e, a) == pytest.approx(float(np.sqrt(divergence)), rel=1e-12)
    # AND both are symmetric; JS stays within [0, 1] and nears 1 for disjoint samples
    assert psi(e, a) == pytest.approx(psi(a, e))
    assert js_distance(e, a) == pytest.approx(js_distance(a, e))
    assert 0 < js_distance(e, a) < 1
    assert 0.99 < js_distance([10_000, 0], [0, 10_000]) <= 1.0


def test_an_empty_bin_stays_finite_and_bins_empty_on_both_sides_carry_no_weight() -> None:
    # GIVEN a window of 99 values that misses one baseline bin holding a tenth of the mass
    baseline, window = [100] * 10, [11] * 9 + [0]
    # THEN PSI stays finite and moderate (0.30; a floor of 1e-4 on shares would have made it 0.70)
    assert 0.25 < psi(baseline, window) < 0.35
    # AND a bin empty in both the baseline and the window changes nothing
    assert psi([*baseline, 0], [*window, 0]) == psi(baseline, window)
    assert js_distance([*baseline, 0], [*window, 0]) == js_distance(baseline, window)
    # AND two empty vectors compare as identical
    assert psi([0, 0], [0, 0]) == 0.0
    assert js_distance([0, 0], [0, 0]) == 0.0


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


def test_the_batch_accumulator_and_the_monitor_give_identical_values_for_the_same_counts(
    reference: np.ndarray,
) -> None:
    # GIVEN one shifted numeric sample, counted by the batch path's accumulator
    baseline = numeric_baseline(reference)
    sample = np.random.default_rng(12).normal(54.0, 11.0, 700)
    acc = BinnedCounts(baseline)
    acc.add(sample)
    stat = acc.stat()
    # WHEN the monitor judges the accumulator's counts, and the raw values
    counts = acc.current()
    assert isinstance(counts, list)
    from_counts = compare_numeric_counts(baseline, counts, Thresholds())
    from_values = compare_numeric(baseline, sample.tolist(), Thresholds())
    # THEN PSI and JS are the same numbers to the last bit, not merely close
    assert stat.psi is not None
    assert stat.psi > 0.05
    assert (from_counts.psi, from_counts.js_distance) == (stat.psi, stat.js)
    assert (from_values.psi, from_values.js_distance) == (stat.psi, stat.js)


def test_categorical_counts_with_a_new_category_agree_across_both_paths() -> None:
    # GIVEN a categorical sample with a category the baseline never saw, and nulls
    baseline = CategoricalBaseline(count=100, missing=0, counts={"a": 50, "b": 30, "c": 20})
    values: list[str | None] = ["a"] * 300 + ["b"] * 100 + ["c"] * 60 + ["zzz"] * 40 + [None] * 5 + [""] * 2
    acc = BinnedCounts(baseline)
    acc.add(values)
    stat = acc.stat()
    # THEN the accumulator reports the new category under UNSEEN, nulls apart
    assert acc.current() == {"a": 300, "b": 100, "c": 60, UNSEEN: 40}
    assert stat.missing == 7
    # AND the monitor's detector gives the identical PSI and JS from those counts and from the values
    counts = acc.current()
    assert isinstance(counts, dict)
    from_counts = compare_categorical_counts(baseline, counts, Thresholds())
    from_values = compare_categorical(baseline, values, Thresholds())
    assert from_counts.bins == ["a", "b", "c", UNSEEN]
    assert from_values.bins == ["a", "b", "c", "zzz"]
    assert (from_counts.psi, from_counts.js_distance) == (stat.psi, stat.js)
    assert (from_values.psi, from_values.js_distance) == (stat.psi, stat.js)
    # AND without a new category the UNSEEN key is left out and the values still agree
    plain = BinnedCounts(baseline)
    plain.add(["a", "b", "b", "c"] * 50)
    assert plain.current() == {"a": 50, "b": 100, "c": 50}
    plain_counts = plain.current()
    assert isinstance(plain_counts, dict)
    judged = compare_categorical_counts(baseline, plain_counts, Thresholds())
    assert (judged.psi, judged.js_distance) == (plain.stat().psi, plain.stat().js)
