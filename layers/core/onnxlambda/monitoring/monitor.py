"""One monitoring run: input drift per feature, output drift, and live performance for a window.

`evaluate` is pure (records in, metrics and a summary out); `run` adds the S3 reading. The monitor
function (functions/monitor/app.py) emits the metrics as EMF and stores the summary, which
`onnxlambda drift-report --summary` renders.

Windows tile: the window ends `delivery_delay` before the run (Firehose buffering and the log
subscription deliver late) and is as long as the schedule period, so a record is judged once.
Feedback is scored for the window it *arrives* in, joined with predictions captured up to
`label_lookback` earlier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from onnxlambda import settings
from onnxlambda.contract.manifest import CategoricalBaseline, ClassificationOutput, Manifest, NumericBaseline
from onnxlambda.monitoring import metrics as m
from onnxlambda.monitoring import performance
from onnxlambda.monitoring.detectors import (
    DriftResult,
    Thresholds,
    compare_categorical,
    compare_categorical_counts,
    compare_numeric,
    compare_numeric_counts,
)
from onnxlambda.monitoring.window import Record, Records, S3Reader, in_window, join_feedback, read_s3

SUMMARY_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    bucket: str = ""
    capture_prefix: str = "capture/"
    summary_prefix: str = "monitor/"
    window: timedelta = timedelta(hours=1)
    delivery_delay: timedelta = timedelta(minutes=20)
    label_lookback: timedelta = timedelta(hours=24)
    min_samples: int = 100
    min_feedback: int = 50
    family_alpha: float = 0.01

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """From the monitor's ONNXLAMBDA_* variables (onnxlambda.settings)."""
        return cls(
            bucket=settings.get("ONNXLAMBDA_CAPTURE_BUCKET", env),
            capture_prefix=settings.get("ONNXLAMBDA_CAPTURE_PREFIX", env),
            summary_prefix=settings.get("ONNXLAMBDA_SUMMARY_PREFIX", env),
            window=timedelta(minutes=settings.get("ONNXLAMBDA_WINDOW_MINUTES", env)),
            delivery_delay=timedelta(minutes=settings.get("ONNXLAMBDA_DELIVERY_DELAY_MINUTES", env)),
            label_lookback=timedelta(hours=settings.get("ONNXLAMBDA_LABEL_LOOKBACK_HOURS", env)),
            min_samples=settings.get("ONNXLAMBDA_MIN_SAMPLES", env),
            min_feedback=settings.get("ONNXLAMBDA_MIN_FEEDBACK", env),
            family_alpha=settings.get("ONNXLAMBDA_DRIFT_FAMILY_ALPHA", env),
        )

    def window_for(self, now: datetime) -> tuple[datetime, datetime]:
        end = now.astimezone(UTC).replace(second=0, microsecond=0) - self.delivery_delay
        return end - self.window, end


@dataclass(frozen=True, slots=True)
class MonitorResult:
    metrics: m.MetricValues
    summary: dict[str, Any]


def thresholds_for(manifest: Manifest, settings: MonitorSettings) -> Thresholds:
    # One decision per feature plus one for the output share the family false-alarm rate.
    return Thresholds.for_tests(
        len(manifest.features) + 1, settings.family_alpha, min_samples=settings.min_samples
    )


def drift_of(
    manifest: Manifest, inferences: list[Record], thresholds: Thresholds
) -> tuple[dict[str, DriftResult], DriftResult]:
    features: dict[str, DriftResult] = {}
    for feature in manifest.features:
        baseline = manifest.baselines.features[feature.name]
        present = [r["features"] for r in inferences if feature.name in r.get("features", {})]
        if not present and inferences:
            continue  # redacted at capture: not monitored
        column = [f.get(feature.name) for f in present]
        if isinstance(baseline, NumericBaseline):
            nums = [v if type(v) in (int, float) else None for v in column]
            features[feature.name] = compare_numeric(baseline, nums, thresholds)
        else:
            cats = [v if isinstance(v, str) else None for v in column]
            features[feature.name] = compare_categorical(baseline, cats, thresholds)
    out, base = manifest.output, manifest.baselines.output
    predictions = [r.get("prediction", {}) for r in inferences]
    if isinstance(out, ClassificationOutput):
        assert isinstance(base, CategoricalBaseline)
        labels = [p.get("label") if isinstance(p.get("label"), str) else None for p in predictions]
        output = compare_categorical(base, labels, thresholds)
    else:
        assert isinstance(base, NumericBaseline)
        values = [p.get(out.name) if type(p.get(out.name)) in (int, float) else None for p in predictions]
        output = compare_numeric(base, values, thresholds)
    return features, output


def evaluate(
    manifest: Manifest, records: Records, start: datetime, end: datetime, settings: MonitorSettings
) -> MonitorResult:
    """Drift and live performance for the window [start, end) from everything read."""
    mine = [r for r in records.inferences if r.get("model_version") == manifest.version]
    window = in_window(mine, start, end)
    thresholds = thresholds_for(manifest, settings)
    values: m.MetricValues = {m.MONITOR_SAMPLES: ("Count", float(len(window)))}
    features, output = drift_of(manifest, window, thresholds)
    if len(window) >= settings.min_samples:
        # Below the gate the statistics are noise: emit nothing, alarms treat missing as OK.
        values[m.DRIFTED_FEATURES] = ("Count", float(sum(bool(r.drift) for r in features.values())))
        values[m.OUTPUT_DRIFT] = ("Count", float(bool(output.drift)))
        for name, r in [*features.items(), ("output", output)]:
            values[m.PSI_PREFIX + m.metric_safe(name)] = ("None", r.psi)
            values[m.JS_PREFIX + m.metric_safe(name)] = ("None", r.js_distance)
            if r.kind == "categorical":
                values[m.LINF_PREFIX + m.metric_safe(name)] = ("None", r.linf)
        if isinstance(manifest.output, ClassificationOutput):
            n = max(output.n, 1)
            for label in manifest.output.labels:
                share = output.current_counts[output.bins.index(label)] / n
                values[m.CLASS_SHARE_PREFIX + m.metric_safe(label)] = ("None", share)

    feedback = in_window(records.feedback, start, end)
    joined = join_feedback(in_window(mine, start - settings.label_lookback, end), feedback)
    usable = performance.usable_count(manifest, joined)
    values[m.LIVE_SAMPLES] = ("Count", float(usable))
    perf: dict[str, Any] = {"feedback": len(feedback), "joined": len(joined), "usable": usable}
    if usable >= settings.min_feedback:
        live = performance.live_metric(manifest, joined)
        reference = manifest.metric(live.name) if live.name in {x.name for x in manifest.metrics} else None
        values[m.LIVE_METRIC_PREFIX + live.name] = ("None", live.value)
        perf.update(metric=live.name, live=live.value)
        if reference is not None:
            rel = performance.ratio(live, reference)
            values[m.PERFORMANCE_RATIO] = ("None", rel)
            perf.update(evaluation=reference.value, ratio=rel)

    summary = {
        "schema": SUMMARY_SCHEMA,
        "model": {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256},
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "samples": len(window),
        "other_versions": len(in_window(records.inferences, start, end)) - len(window),
        "unreadable_lines": records.unreadable_lines,
        "gated": len(window) < settings.min_samples,
        "thresholds": {
            "alpha_per_test": thresholds.alpha,
            "psi_floor": thresholds.psi_floor,
            "linf_floor": thresholds.linf_floor,
            "min_samples": thresholds.min_samples,
        },
        "features": {k: v.to_dict() for k, v in features.items()},
        "output": output.to_dict(),
        "performance": perf,
        "metrics": {k: v for k, (_, v) in values.items()},
    }
    return MonitorResult(values, summary)


def summary_from_counts(
    manifest: Manifest,
    features: Mapping[str, Sequence[int] | Mapping[str, int]],
    output: Sequence[int] | Mapping[str, int] | None,
    settings: MonitorSettings,
    label: str = "counts",
) -> dict[str, Any]:
    """A summary (the shape `evaluate` stores) from bin counts gathered elsewhere, e.g. a batch
    job's: numeric features as counts per baseline bin, categoricals as {category: count}."""
    thresholds = thresholds_for(manifest, settings)

    def judge(baseline: Any, counts: Sequence[int] | Mapping[str, int]) -> DriftResult:
        if isinstance(baseline, NumericBaseline):
            return compare_numeric_counts(baseline, list(counts), thresholds)  # type: ignore[arg-type]
        return compare_categorical_counts(baseline, dict(counts), thresholds)  # type: ignore[arg-type]

    results = {n: judge(manifest.baselines.features[n], c) for n, c in features.items()}
    out = judge(manifest.baselines.output, output) if output is not None else None
    samples = max([r.n for r in results.values()] + [out.n if out else 0])
    return {
        "schema": SUMMARY_SCHEMA,
        "model": {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256},
        "window": {"start": label, "end": label},
        "samples": samples,
        "gated": samples < settings.min_samples,
        "thresholds": {
            "alpha_per_test": thresholds.alpha,
            "psi_floor": thresholds.psi_floor,
            "linf_floor": thresholds.linf_floor,
            "min_samples": thresholds.min_samples,
        },
        "features": {k: v.to_dict() for k, v in results.items()},
        "output": out.to_dict() if out else None,
        "performance": {},
    }


def run(manifest: Manifest, s3: S3Reader, now: datetime, settings: MonitorSettings) -> MonitorResult:
    start, end = settings.window_for(now)
    records = read_s3(s3, settings.bucket, settings.capture_prefix, start, now)
    # Older hours are read only when feedback names predictions this read does not hold (most
    # runs then read ~2 hours of objects, not the whole label lookback).
    known = {r.get("inference_id") for r in records.inferences}
    wanted = {f.get("inference_id") for f in in_window(records.feedback, start, end)} - known
    if wanted and settings.label_lookback > timedelta(0):
        older = read_s3(
            s3,
            settings.bucket,
            settings.capture_prefix,
            start - settings.label_lookback,
            start - timedelta(hours=1),
        )
        records.inferences.extend(r for r in older.inferences if r.get("inference_id") in wanted)
        records.unreadable_lines += older.unreadable_lines
    return evaluate(manifest, records, start, end, settings)


def summary_key(settings: MonitorSettings, end: datetime) -> str:
    return f"{settings.summary_prefix}{end:%Y/%m/%d/%H%M}.json"


__all__ = [
    "MonitorResult",
    "MonitorSettings",
    "drift_of",
    "evaluate",
    "run",
    "summary_from_counts",
    "summary_key",
]
