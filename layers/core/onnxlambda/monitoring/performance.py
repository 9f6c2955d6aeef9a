"""The live value of the manifest's evaluation metric, from predictions joined with feedback.

`ratio` puts every metric on one scale for a single alarm: live / evaluation when higher is
better, evaluation / live when lower is better, so 1.0 means "as good as at evaluation" and 0.9
means "10% worse" whichever the metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from onnxlambda.contract.manifest import ClassificationOutput, Manifest, Metric

CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")


def live_metric(manifest: Manifest, pairs: Sequence[tuple[Mapping[str, Any], Any]]) -> Metric:
    """The manifest's primary metric (or accuracy / mae if it is not one we compute) on `pairs`
    of (captured inference record, actual outcome). Pairs whose actual is not usable are skipped."""
    out = manifest.output
    name = manifest.primary_metric
    if isinstance(out, ClassificationOutput):
        name = name if name in CLASSIFICATION_METRICS else "accuracy"
        labels = set(out.labels)
        usable = [(r["prediction"], a) for r, a in pairs if isinstance(a, str) and a in labels]
        if not usable:
            raise ValueError("no usable feedback")
        if name == "accuracy":
            value = sum(p.get("label") == a for p, a in usable) / len(usable)
        elif name == "macro_f1":
            value = _macro_f1([a for _, a in usable], [p.get("label") for p, _ in usable], out.labels)
        else:
            eps = 1e-15
            value = -sum(
                math.log(min(max(float(p.get("probabilities", {}).get(a, 0.0)), eps), 1.0)) for p, a in usable
            ) / len(usable)
    else:
        name = name if name in REGRESSION_METRICS else "mae"
        usable_r = [
            (float(r["prediction"][out.name]), float(a))
            for r, a in pairs
            if type(a) in (int, float) and math.isfinite(a) and out.name in r.get("prediction", {})
        ]
        if not usable_r:
            raise ValueError("no usable feedback")
        errors = [p - a for p, a in usable_r]
        if name == "mae":
            value = sum(abs(e) for e in errors) / len(errors)
        elif name == "rmse":
            value = math.sqrt(sum(e * e for e in errors) / len(errors))
        else:
            mean = sum(a for _, a in usable_r) / len(usable_r)
            total = sum((a - mean) ** 2 for _, a in usable_r)
            value = 1.0 - sum(e * e for e in errors) / total if total > 0 else 0.0
    higher = (
        manifest.metric(name).higher_is_better
        if name in {m.name for m in manifest.metrics}
        else (name in ("accuracy", "macro_f1", "r2"))
    )
    return Metric(name=name, value=value, higher_is_better=higher)


def ratio(live: Metric, reference: Metric) -> float:
    """1.0 = as good as at evaluation; below 1 = worse (for either direction of metric)."""
    num, den = (live.value, reference.value) if live.higher_is_better else (reference.value, live.value)
    if den == 0:
        return 1.0 if num == 0 else math.inf
    return num / den


def usable_count(manifest: Manifest, pairs: Sequence[tuple[Mapping[str, Any], Any]]) -> int:
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        return sum(isinstance(a, str) and a in out.labels for _, a in pairs)
    return sum(type(a) in (int, float) and math.isfinite(a) for _, a in pairs)


def _macro_f1(actual: Sequence[str], predicted: Sequence[Any], labels: Sequence[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(a == label and p == label for a, p in zip(actual, predicted, strict=True))
        fp = sum(a != label and p == label for a, p in zip(actual, predicted, strict=True))
        fn = sum(a == label and p != label for a, p in zip(actual, predicted, strict=True))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


__all__ = ["live_metric", "ratio", "usable_count"]
