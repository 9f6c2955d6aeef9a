"""Drift detectors, tested the way alibi-detect and NannyML test theirs: seeded reference data,
no drift on the same distribution, known shifts detected, the false-alarm rate measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxlambda.contract.manifest import CategoricalBaseline
from onnxlambda.monitoring.detectors import (
    Thresholds,
    chi2_homogeneity,
    chi2_ppf,
    chi2_sf,
    compare_categorical,
    compare_categorical_counts,
    compare_numeric,
    js_distance,
    linf,
    psi,
    psi_critical,
)
from tests.unit.baselines import numeric_baseline

REFERENCE_SIZE = 2000
WINDOW = 200  # the monitor's ONNXLAMBDA_MIN_SAMPLES default is 100; 200 is a typical hourly window
CATEGORIES = ["Biscoe", "Dream", "Torgersen"]
SHARES = [0.48, 0.36, 0.16]
THRESHOLDS = Thresholds.for_tests(7, 0.01, min_samples=100)  # penguins: 6 features + the output


def categorical_baseline(rng: np.random.Generator, size: int = REFERENCE_SIZE) -> CategoricalBaseline:
    drawn = rng.choice(len(CATEGORIES), size, p=SHARES)
    counts = np.bincount(drawn, minlength=len(CATEGORIES)).tolist()
    return CategoricalBaseline(count=size, missing=0, counts=dict(zip(CATEGORIES, counts, strict=True)))


def draw_categories(rng: np.random.Generator, n: int, shares: list[float] = SHARES) -> list[str | None]:
    return [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), n, p=shares)]


# -- the statistics themselves ----------------------------------------------------------------


def test_chi_square_distribution_matches_known_quantiles() -> None:
    # GIVEN textbook values of the chi-square distribution (no scipy in the Lambda layer)
    # THEN the survival function and its inverse reproduce them
    assert chi2_ppf(0.99, 9) == pytest.approx(21.666, abs=1e-3)
    assert chi2_ppf(0.95, 1) == pytest.approx(3.841, abs=1e-3)
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(0.5, 2) == pytest.approx(math.exp(-0.25), abs=1e-12)  # closed form for dof 2
    assert chi2_sf(124.342, 100) == pytest.approx(0.05, abs=1e-3)


def test_statistics_are_zero_for_identical_counts_and_grow_with_the_difference() -> None:
    same = [10, 20, 30, 40]
    assert psi(same, same) == pytest.approx(0.0)
    assert js_distance(same, same) == pytest.approx(0.0)
    assert linf(same, same) == 0.0
    assert chi2_homogeneity(same, same)[1] == pytest.approx(1.0)
    # WHEN mass moves between bins THEN every statistic grows with the amount moved
    small, large = [12, 20, 30, 38], [40, 20, 30, 10]
    assert 0 < psi(same, small) < psi(same, large)
    assert 0 < js_distance(same, small) < js_distance(same, large) <= 1.0
    assert linf(same, large) == pytest.approx(0.3)


def test_psi_threshold_shrinks_as_the_window_grows() -> None:
    # The FACTS.md numbers: with 10 bins the 99th percentile of no-drift PSI is ~0.25 at 100
    # samples, ~0.11 at 200 and ~0.02 at 1,000 (reference size large).
    assert psi_critical(100, 10**9, 10, 0.01) == pytest.approx(0.217, abs=0.04)
    assert psi_critical(200, 10**9, 10, 0.01) == pytest.approx(0.108, abs=0.02)
    assert psi_critical(1000, 10**9, 10, 0.01) == pytest.approx(0.0217, abs=0.005)


# -- behaviour on seeded data -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_same_distribution_does_not_drift(seed: int) -> None:
    # GIVEN a baseline from reference data and a window from the same distribution
    rng = np.random.default_rng(seed)
    baseline = numeric_baseline(rng.normal(50, 5, REFERENCE_SIZE))
    window = rng.normal(50, 5, WINDOW).tolist()
    # THEN neither the numeric nor the categorical detector reports drift
    assert compare_numeric(baseline, window, THRESHOLDS).drift is False
    cat = compare_categorical(categorical_baseline(rng), draw_categories(rng, WINDOW), THRESHOLDS)
    assert cat.drift is False


@pytest.mark.parametrize(
    ("shift", "description"),
    [
        (lambda x: x + 5.0, "mean +1 sd"),
        (lambda x: x - 25.0, "mean -5 sd"),
        (lambda x: 50 + (x - 50) * 5, "scale x5"),
    ],
)
def test_numeric_shifts_are_detected(shift: object, description: str) -> None:
    rng = np.random.default_rng(7)
    baseline = numeric_baseline(rng.normal(50, 5, REFERENCE_SIZE))
    # WHEN the live values are shifted or rescaled
    window = shift(rng.normal(50, 5, WINDOW))  # type: ignore[operator]
    result = compare_numeric(baseline, window.tolist(), THRESHOLDS)
    # THEN drift is reported, with PSI above its window-size-aware threshold
    assert result.drift is True, description
    assert result.psi > result.psi_threshold


def test_a_new_category_is_detected() -> None:
    rng = np.random.default_rng(11)
    baseline = categorical_baseline(rng)
    # WHEN a fifth of the window is a category the baseline never saw
    window = draw_categories(rng, WINDOW)[: WINDOW - 40] + ["Atlantis"] * 40
    result = compare_categorical(baseline, window, THRESHOLDS)
    # THEN it is its own bin and drift is reported
    assert result.bins[-1] == "Atlantis"
    assert result.current_counts[-1] == 40
    assert result.drift is True


def test_a_class_share_change_is_detected() -> None:
    rng = np.random.default_rng(13)
    baseline = categorical_baseline(rng)
    # WHEN the shares move from 48/36/16 to 25/35/40 (e.g. predicted classes)
    result = compare_categorical(baseline, draw_categories(rng, WINDOW, [0.25, 0.35, 0.40]), THRESHOLDS)
    assert result.drift is True
    assert result.linf > 0.2


def test_too_small_a_window_is_not_decided() -> None:
    rng = np.random.default_rng(3)
    baseline = numeric_baseline(rng.normal(size=REFERENCE_SIZE))
    # GIVEN fewer values than the minimum sample count, even if obviously shifted
    result = compare_numeric(baseline, (rng.normal(size=50) + 10).tolist(), THRESHOLDS)
    # THEN the statistics are reported but no decision is taken
    assert result.drift is None
    assert result.psi > 1


def test_counts_from_parts_add_up_to_the_same_result() -> None:
    # GIVEN a window assembled from two halves' category counts
    baseline = CategoricalBaseline(count=300, missing=0, counts={"a": 100, "b": 100, "c": 100})
    whole = compare_categorical(baseline, ["a"] * 80 + ["b"] * 60 + ["c"] * 60, THRESHOLDS)
    parts = compare_categorical_counts(baseline, {"a": 30 + 50, "b": 30 + 30, "c": 20 + 40}, THRESHOLDS)
    # THEN the statistics are identical (bin counts aggregate by addition)
    assert (whole.psi, whole.chi2, whole.drift) == (parts.psi, parts.chi2, parts.drift)


FAR_SEEDS = 300
FAR_BOUND = 0.03  # the family alpha is 0.01; 0.03 leaves room for 300-seed sampling noise


@pytest.mark.parametrize("window", [100, WINDOW, 1000])
def test_false_alarm_rate_on_no_drift_windows_stays_under_the_bound(window: int) -> None:
    # GIVEN penguins-shaped windows (4 numeric features, 2 categoricals, the output's class shares)
    # drawn from the same distributions as a 275-row baseline (the penguins manifest's size)
    false_alarms = 0
    for seed in range(FAR_SEEDS):
        rng = np.random.default_rng(10_000 + seed)
        drifted = False
        for _ in range(4):
            baseline = numeric_baseline(rng.normal(size=275))
            drifted |= bool(compare_numeric(baseline, rng.normal(size=window).tolist(), THRESHOLDS).drift)
        for _ in range(3):
            cat = compare_categorical(
                categorical_baseline(rng, 275), draw_categories(rng, window), THRESHOLDS
            )
            drifted |= bool(cat.drift)
        false_alarms += drifted
    # THEN the share of windows with any drift decision stays under the stated bound
    rate = false_alarms / FAR_SEEDS
    print(f"family false-alarm rate at window {window}: {rate:.4f} over {FAR_SEEDS} seeds")
    assert rate <= FAR_BOUND
