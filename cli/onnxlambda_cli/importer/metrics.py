"""Held-out metrics of the model's own answers (what the server returns), in numpy.

Classification: accuracy, macro F1 over the classes present in the truth or the predictions
(scikit-learn's `f1_score(average="macro")`), log loss with probabilities renormalised and
clipped to [eps, 1 - eps] (scikit-learn's `log_loss`). Regression: r2, mae, rmse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.manifest import Metric
from onnxlambda.monitoring.baselines import sig


def classification_metrics(
    classes: Sequence[str],
    truth: Sequence[str],
    predicted: Sequence[str],
    probabilities: npt.NDArray[np.floating] | None,
) -> list[Metric]:
    y, p = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    metrics = [
        Metric(name="accuracy", value=sig(float(np.mean(y == p)))),
        Metric(name="macro_f1", value=sig(_macro_f1(y, p))),
    ]
    if probabilities is not None:
        metrics.append(
            Metric(name="log_loss", value=sig(_log_loss(classes, y, probabilities)), higher_is_better=False)
        )
    return metrics


def _macro_f1(y: npt.NDArray[np.object_], p: npt.NDArray[np.object_]) -> float:
    scores = []
    for c in sorted(set(y.tolist()) | set(p.tolist())):
        tp = float(np.sum((y == c) & (p == c)))
        denominator = float(np.sum(y == c) + np.sum(p == c))
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _log_loss(
    classes: Sequence[str], y: npt.NDArray[np.object_], probabilities: npt.NDArray[np.floating]
) -> float:
    probs = np.asarray(probabilities, dtype=np.float64)
    # float32 probabilities from the graph sum to 1 only up to ~1e-7: renormalise first.
    probs = probs / probs.sum(axis=1, keepdims=True)
    eps = np.finfo(np.float64).eps
    index = {c: i for i, c in enumerate(classes)}
    picked = probs[np.arange(len(y)), [index[c] for c in y.tolist()]]
    return float(np.mean(-np.log(np.clip(picked, eps, 1 - eps))))


def regression_metrics(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]) -> list[Metric]:
    error = predicted - truth
    total = float(np.sum((truth - truth.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total else 0.0
    return [
        Metric(name="r2", value=sig(r2)),
        Metric(name="mae", value=sig(float(np.mean(np.abs(error)))), higher_is_better=False),
        Metric(name="rmse", value=sig(math.sqrt(float(np.mean(error**2)))), higher_is_better=False),
    ]


__all__ = ["classification_metrics", "regression_metrics"]
