"""Dollars per million predictions from measured durations and Lambda's public x86_64 prices.

Assumption (stated in the report): CPU scales with memory. Lambda allots CPU in proportion to the
memory size, one full vCPU at 1,769 MB; the handler is single-threaded (ONNXLAMBDA_ORT_INTRA_OP_THREADS=1),
so a duration measured on one full core here stands for >= 1,769 MB and stretches by 1,769/M
below it. Above 1,769 MB a single-threaded handler gets no faster and only costs more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# AWS Lambda x86_64 list prices, us-east-1, first pricing tier (aws.amazon.com/lambda/pricing).
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.20 / 1_000_000
FULL_VCPU_MB = 1769
MEMORY_SIZES_MB = (128, 256, 512, 1024, 1769, 2048, 3008)


@dataclass(frozen=True, slots=True)
class CostPoint:
    memory_mb: int
    rows_per_request: int
    duration_ms: float  # projected at this memory size
    usd_per_million_predictions: float


def projected_duration_ms(measured_ms: float, memory_mb: int) -> float:
    """The measured (one full vCPU) duration at a memory size, CPU share proportional to memory."""
    return measured_ms * max(1.0, FULL_VCPU_MB / memory_mb)


def usd_per_million_predictions(measured_ms: float, memory_mb: int, rows_per_request: int) -> CostPoint:
    duration = projected_duration_ms(measured_ms, memory_mb)
    billed_ms = max(1, math.ceil(duration))  # Lambda bills in 1 ms increments
    per_request = PRICE_PER_REQUEST + billed_ms / 1000 * memory_mb / 1024 * PRICE_PER_GB_SECOND
    return CostPoint(memory_mb, rows_per_request, duration, per_request * 1_000_000 / rows_per_request)


def cost_table(
    measured_ms: float, rows_per_request: int, sizes: tuple[int, ...] = MEMORY_SIZES_MB
) -> list[CostPoint]:
    return [usd_per_million_predictions(measured_ms, m, rows_per_request) for m in sizes]
