"""Monitor function: EventBridge schedule -> one window of captured data -> EMF metrics + summary.

Transport only: read the settings, call onnxlambda.monitoring.monitor.run, hand the metric values
to Powertools Metrics and store the window's summary (what the drift report renders) in S3.
"""

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring.monitor import MonitorSettings, run, summary_key
from onnxlambda.settings import Settings

logger = Logger()
metrics = Metrics()
settings = MonitorSettings.from_env()
manifest = load_manifest(Settings.from_env().model_dir)
logger.append_keys(model_name=manifest.name, model_version=manifest.version, model_sha256=manifest.sha256)
_UNITS = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds, "None": MetricUnit.NoUnit}
_s3: Any = None


def s3() -> Any:
    """Created on first use, so tests can start moto before it exists."""
    global _s3  # noqa: PLW0603 - one client per execution environment
    if _s3 is None:
        _s3 = boto3.client("s3")
    return _s3


def _now(event: dict[str, Any]) -> datetime:
    # A scheduled event carries the time it was due; replaying an event replays its window.
    raw = event.get("time")
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else datetime.now(UTC)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = run(manifest, s3(), _now(event), settings)
    for name, (unit, value) in result.metrics.items():
        metrics.add_metric(name=name, unit=_UNITS[unit], value=value)
    metrics.add_metadata(key="model_version", value=manifest.version)
    summary = result.summary
    key = summary_key(settings, datetime.fromisoformat(summary["window"]["end"]))
    s3().put_object(
        Bucket=settings.bucket,
        Key=key,
        Body=json.dumps(summary).encode(),
        ContentType="application/json",
    )
    drifted = sorted(k for k, v in summary["features"].items() if v["drift"])
    logger.info(
        "monitor window",
        extra={
            "window": summary["window"],
            "samples": summary["samples"],
            "gated": summary["gated"],
            "drifted_features": drifted,
            "output_drift": summary["output"]["drift"],
            "performance": summary["performance"],
            "summary_key": key,
        },
    )
    return {"samples": summary["samples"], "drifted_features": drifted, "summary_key": key}
