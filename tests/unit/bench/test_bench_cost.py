"""Cost per million predictions: list prices, 1 ms billing, CPU share proportional to memory."""

from __future__ import annotations

import pytest

from bench.cost import FULL_VCPU_MB, PRICE_PER_GB_SECOND, PRICE_PER_REQUEST, usd_per_million_predictions


def test_duration_stretches_below_one_vcpu_and_not_above() -> None:
    # GIVEN 10 ms measured on one full core
    # THEN at half a vCPU it takes twice as long, and more memory than one vCPU does not speed it up
    assert usd_per_million_predictions(10.0, FULL_VCPU_MB // 2, 1).duration_ms == pytest.approx(
        10.0 * FULL_VCPU_MB / (FULL_VCPU_MB // 2)
    )
    assert usd_per_million_predictions(10.0, 3008, 1).duration_ms == 10.0


def test_billing_rounds_up_to_the_millisecond_and_spreads_over_rows() -> None:
    # GIVEN 0.2 ms measured: at 1,024 MB it stretches to 0.35 ms, billed as 1 ms
    point = usd_per_million_predictions(0.2, 1024, 1)
    # THEN one million single-row requests cost the request fee plus 1 ms of 1 GB each
    assert point.usd_per_million_predictions == pytest.approx(
        1e6 * (PRICE_PER_REQUEST + 0.001 * PRICE_PER_GB_SECOND)
    )
    # and 1,000 rows per request divide that by 1,000
    assert usd_per_million_predictions(0.2, 1024, 1000).usd_per_million_predictions == pytest.approx(
        point.usd_per_million_predictions / 1000
    )
