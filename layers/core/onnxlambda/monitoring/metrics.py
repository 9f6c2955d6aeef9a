"""Metric names and per-request metric values, in one place for the handlers, template and docs.

Every metric goes to namespace OnnxLambda with the single dimension `service`: alarms and
dashboards in template.yaml then name each metric exactly, across model releases (a model
version as a dimension would need the template to know it). The model version, sha256 and
function version travel as EMF metadata instead (queryable with Logs Insights), and every log
line carries them too.

Cost is one custom metric per name: names with a feature or code in them are bounded by the
manifest (nullable features only) and by the fixed sets of error codes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Final, Literal

from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from onnxlambda.serving.dataplane import Inference

Unit = Literal["Count", "Milliseconds", "None"]
MetricValues = dict[str, tuple[Unit, float]]

NAMESPACE: Final = "OnnxLambda"
# Service health (API function, per invocation)
REQUESTS: Final = "Requests"
PREDICTIONS: Final = "Predictions"  # rows scored
INFERENCE_TIME: Final = "InferenceTime"
HANDLER_TIME: Final = "HandlerTime"
INTERNAL_ERRORS: Final = "InternalErrors"
REJECTED_PREFIX: Final = "Rejected_"  # + request-level error code (400/413/422/503)
# Input health (API function, per invocation)
INVALID_VALUES_PREFIX: Final = "InvalidValues_"  # + value-level reason (out_of_range, ...)
MISSING_VALUES: Final = "MissingValues"  # nulls over all features
MISSING_PREFIX: Final = "Missing_"  # + nullable feature name
MEAN_SCORE: Final = "MeanScore"  # top-class probability, or the predicted value
CAPTURED_ROWS: Final = "CapturedRows"
FEEDBACK: Final = "Feedback"
# Drift and business impact (monitor function, per window)
MONITOR_SAMPLES: Final = "MonitorSamples"
DRIFTED_FEATURES: Final = "DriftedFeatures"
OUTPUT_DRIFT: Final = "OutputDrift"
PSI_PREFIX: Final = "PSI_"  # + feature name, or "output"
JS_PREFIX: Final = "JSDistance_"
LINF_PREFIX: Final = "LInf_"  # categoricals and class shares
CLASS_SHARE_PREFIX: Final = "ClassShare_"
LIVE_SAMPLES: Final = "LiveSamples"  # feedback joined with a captured prediction
LIVE_METRIC_PREFIX: Final = "Live_"  # + the manifest's primary metric name
PERFORMANCE_RATIO: Final = "PerformanceRatio"  # live / evaluation; < 1 is worse, either direction
# Shadow challenger (API function, per invocation with a challenger; onnxlambda.release.shadow)
SHADOW_ROWS: Final = "ShadowRows"  # rows the challenger answered
SHADOW_DISAGREEMENTS: Final = "ShadowDisagreements"  # of those, answers that differ from the champion's
SHADOW_REFUSED: Final = "ShadowRefused"  # sampled rows the challenger's contract refuses
SHADOW_SKIPPED: Final = "ShadowSkipped"  # sampled rows left out by the per-request latency budget
SHADOW_ERRORS: Final = "ShadowErrors"  # shadow scoring failed (the response was unaffected)
SHADOW_TIME: Final = "ShadowTime"  # milliseconds the shadow added to the request
SHADOW_METRICS: Final = (
    SHADOW_ROWS,
    SHADOW_DISAGREEMENTS,
    SHADOW_REFUSED,
    SHADOW_SKIPPED,
    SHADOW_ERRORS,
    SHADOW_TIME,
)

REQUEST_CODES: Final = (
    "malformed_request",
    "validation_failed",
    "body_too_large",
    "too_many_rows",
    "model_not_ready",
    "invalid_feedback",
    "not_found",
    "method_not_allowed",
)
INPUT_CODES: Final = ("malformed_request", "validation_failed")
VALUE_CODES: Final = (
    "missing",
    "missing_field",
    "missing_feature",
    "unknown_feature",
    "null_not_allowed",
    "wrong_type",
    "not_finite",
    "out_of_range",
    "unknown_category",
    "empty",
)


_SAFE: Final = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_UNSAFE_CHAR: Final = re.compile(r"[^A-Za-z0-9_.-]")


def metric_safe(name: str) -> str:
    """A feature or class name as it may appear inside a metric name.

    Names of letters, digits, "_", "." and "-" (up to 200 characters) are used as they are. Any
    other name has each other character replaced by "_", is cut to 180 characters, and gets "_"
    and the first 8 hex digits of its UTF-8 sha256 appended, so two names that differ only in
    such characters never share a metric: "od280/od315_of_diluted_wines" ->
    "od280_od315_of_diluted_wines_<8 hex>". CloudWatch accepts more (1-255 characters), but
    these also survive dashboards, alarm expressions and shells unquoted.
    """
    if _SAFE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{_UNSAFE_CHAR.sub('_', name)[:180]}_{digest}"


def nullable_features(manifest: Manifest) -> list[str]:
    return [f.name for f in manifest.features if f.nullable]


def prediction_metrics(inference: Inference) -> MetricValues:
    """An answered request, any protocol: volume, latency, missing values and the mean score.

    Missing-value counts are sent only when non-zero (Sum over a period is the same; the alarm
    fills gaps with 0) because every metric costs ~15 us of Powertools work per request."""
    values: MetricValues = {
        PREDICTIONS: ("Count", float(inference.rows)),
        INFERENCE_TIME: ("Milliseconds", inference.inference_ms),
    }
    missing = inference.health.missing
    total = sum(missing.values())
    if total:
        values[MISSING_VALUES] = ("Count", float(total))
        for name in nullable_features(inference.manifest):
            if missing.get(name):
                values[MISSING_PREFIX + metric_safe(name)] = ("Count", float(missing[name]))
    score = inference.mean_score()
    if score is not None:
        values[MEAN_SCORE] = ("None", score)
    return values


def rejection_metrics(err: ServingError) -> MetricValues:
    """A refused request: one count for its code, and counts of the value-level reasons."""
    values: MetricValues = {REJECTED_PREFIX + err.code: ("Count", 1.0)}
    if err.code not in INPUT_CODES:
        return values  # e.g. invalid_feedback: not about the model's input
    for code, count in _count(d.code for d in err.details).items():
        # Unknown reasons are folded together so a new code cannot create metrics unnoticed.
        name = INVALID_VALUES_PREFIX + (code if code in VALUE_CODES else "other")
        values[name] = ("Count", values.get(name, ("Count", 0.0))[1] + count)
    return values


def _count(codes: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in codes:
        counts[c] = counts.get(c, 0) + 1
    return counts


def api_metric_names(manifest: Manifest) -> list[str]:
    """Every metric name the API function can emit for this model (for the cost estimate)."""
    return [
        REQUESTS,
        PREDICTIONS,
        INFERENCE_TIME,
        HANDLER_TIME,
        INTERNAL_ERRORS,
        "ColdStart",
        MISSING_VALUES,
        MEAN_SCORE,
        CAPTURED_ROWS,
        FEEDBACK,
        *(REJECTED_PREFIX + c for c in REQUEST_CODES),
        *(INVALID_VALUES_PREFIX + c for c in (*VALUE_CODES, "other")),
        *(MISSING_PREFIX + metric_safe(n) for n in nullable_features(manifest)),
        *SHADOW_METRICS,
    ]


def monitor_metric_names(manifest: Manifest) -> list[str]:
    """Every metric name the monitor emits for this model."""
    names = [MONITOR_SAMPLES, DRIFTED_FEATURES, OUTPUT_DRIFT, LIVE_SAMPLES, PERFORMANCE_RATIO]
    if manifest.primary_metric is not None:  # an imported model without a test set has none
        names.append(LIVE_METRIC_PREFIX + manifest.primary_metric)
    for f in [*manifest.features]:
        names += [PSI_PREFIX + metric_safe(f.name), JS_PREFIX + metric_safe(f.name)]
        if f.is_categorical:
            names.append(LINF_PREFIX + metric_safe(f.name))
    names += [PSI_PREFIX + "output", JS_PREFIX + "output"]
    if isinstance(manifest.output, ClassificationOutput):
        names.append(LINF_PREFIX + "output")
        names += [CLASS_SHARE_PREFIX + metric_safe(label) for label in manifest.output.labels]
    return names


__all__ = [
    "NAMESPACE",
    "MetricValues",
    "api_metric_names",
    "metric_safe",
    "monitor_metric_names",
    "nullable_features",
    "prediction_metrics",
    "rejection_metrics",
]
