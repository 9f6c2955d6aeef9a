"""Building the manifest's baselines, beside the code that reads them (onnxlambda.monitoring.drift).

The writer (`onnxlambda import`, the example models' training scripts) and every reader (batch
summaries, the scheduled monitor, the drift report) count through the same functions:
`numeric_bins` for numbers and `count_categories` for categories. So a reference sample binned
here and the same sample counted by a monitor give identical counts, by construction.

Numeric rule: `cut_points` are the interior deciles of the non-missing values (numpy.quantile,
linear interpolation), rounded to 6 significant digits (stable JSON) and deduplicated, so at most
10 bins; value x falls in bin `numpy.searchsorted(cut_points, x, side="right")`. `count` includes
missing values (None, NaN), `counts` covers only the others. Categorical: None and "" are
missing, as for the readers (string tensors carry nulls as "").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.manifest import CategoricalBaseline, NumericBaseline
from onnxlambda.monitoring.drift import count_categories, numeric_bins

SIG_DIGITS: Final = 6
BASELINE_BINS: Final = 10


def sig(x: float, digits: int = SIG_DIGITS) -> float:
    """`x` rounded to `digits` significant digits (what the manifest stores: stable text)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def numeric_baseline(
    values: Sequence[float | None] | npt.NDArray[np.floating], bins: int = BASELINE_BINS
) -> NumericBaseline:
    """The reference distribution of a numeric column (see the module docstring for the rule)."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
    present = arr[np.isfinite(arr)]
    if present.size == 0:
        raise ValueError("a numeric baseline needs at least one non-missing value")
    quantiles = np.quantile(present, [i / bins for i in range(1, bins)])
    cut_points = sorted({sig(float(q)) for q in quantiles})
    return NumericBaseline(
        count=int(arr.size),
        missing=int(arr.size - present.size),
        mean=sig(float(present.mean())),
        std_dev=sig(float(present.std())),
        min=sig(float(present.min())),
        max=sig(float(present.max())),
        cut_points=cut_points,
        counts=[int(c) for c in numeric_bins(cut_points, present)],
    )


def categorical_baseline(values: Iterable[str | None]) -> CategoricalBaseline:
    """Category counts, sorted by category; `count` includes the missing (None or "") values."""
    values = list(values)
    counts = count_categories(values)
    return CategoricalBaseline(
        count=len(values),
        missing=len(values) - sum(counts.values()),
        counts=dict(sorted(counts.items())),
    )


__all__ = ["BASELINE_BINS", "SIG_DIGITS", "categorical_baseline", "numeric_baseline", "sig"]
