"""Baselines built the way models/_common.py builds the manifest's, from seeded reference samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.manifest import NumericBaseline
from onnxlambda.monitoring.drift import numeric_bins


def numeric_baseline(reference: npt.NDArray[np.float64], bins: int = 10) -> NumericBaseline:
    """Interior quantile cut points of the reference and its counts per bin (the manifest's rule)."""
    cuts = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    return NumericBaseline(
        count=len(reference),
        missing=0,
        mean=float(reference.mean()),
        std_dev=float(reference.std()),
        min=float(reference.min()),
        max=float(reference.max()),
        cut_points=cuts.tolist(),
        counts=numeric_bins(cuts, reference).tolist(),
    )
