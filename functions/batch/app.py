"""Batch function: S3 ObjectCreated (input prefix) -> onnxlambda.batch.scoring.score_object per record.

Transport only: read the event, call the core with an S3 client, log and count. What to do with
bad rows, unreadable files and the time budget is decided in the core (layers/core/onnxlambda/
batch.py). An exception here (S3 unreachable, model not loaded) propagates on purpose: Lambda
retries the asynchronous event and then hands it to the on-failure destination (SQS); it is
logged first with the object, the error type and S3's error code. The S3 client's retries,
backoff and timeouts are configured in onnxlambda/batch_s3.py.
"""

import os
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.batch.s3 import s3_client as build_s3_client
from onnxlambda.batch.scoring import BatchConfig, score_object
from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.redaction import WithholdExceptionMessages
from onnxlambda.serving.service import get_service, load_error
from onnxlambda.settings import Settings

logger = Logger()
metrics = Metrics()
config = BatchConfig.from_env()  # refuses overlapping input/output prefixes at init
settings = Settings.from_env()
s3_settings = S3ClientSettings.from_env()
# With REDACT_FIELDS set, a traceback keeps its frames and type but not a message that could quote a value.
logger.addFilter(WithholdExceptionMessages(lambda: bool(settings.redact_fields)))

try:
    _service = get_service(settings)
    logger.append_keys(**_service.log_keys())
except ServingError:
    logger.error("model failed to load; every event will fail and be retried", extra={"reason": load_error()})
logger.append_keys(function_version=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "local"))

_s3: Any = None


def s3_client() -> Any:
    """Created on first use (after any test has set up its S3 mock), then reused."""
    global _s3  # noqa: PLW0603 - one client per execution environment
    if _s3 is None:
        _s3 = build_s3_client(s3_settings)
    return _s3


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = get_service()  # raises if the model did not load: retried, then on-failure queue
    results = []
    for record in S3Event(event).records:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)  # S3 event keys are URL-encoded
        try:
            summary = score_object(
                s3_client(),
                service.runtime,
                service.validator,
                config,
                bucket=bucket,
                key=key,
                version_id=record.s3.get_object.version_id,
                remaining_ms=context.get_remaining_time_in_millis,
                redactor=service.redactor,
            )
        except Exception as exc:
            # Uploads are aborted by now; Lambda retries the event, then sends it to the queue.
            logger.exception(
                "batch object failed; raising for Lambda's retry and the on-failure destination",
                extra={
                    "bucket": bucket,
                    "key": key,
                    "error_type": type(exc).__name__,
                    "s3_error_code": _s3_error_code(exc),
                },
            )
            raise
        status = summary["status"]
        rows = summary.get("rows", {})
        logger.info(
            "batch object done",
            extra={
                "bucket": bucket,
                "key": key,
                "status": status,
                "rows": rows,
                "error": summary.get("error"),
            },
        )
        # Dimension `service` only, as for the API: alarms name metrics across model releases;
        # the model version rides along as metadata.
        metrics.add_metric(name=f"BatchFiles_{status}", unit=MetricUnit.Count, value=1)
        if summary.get("model"):
            metrics.add_metadata(key="model", value=summary["model"])
        if rows:
            metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=rows["scored"])
            metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=rows["rejected"])
        results.append(
            {
                "status": status,
                "key": key,
                "rows": rows,
                "error": summary.get("error") or summary.get("reason"),
                "summary": summary.get("output", {}).get("summary"),
            }
        )
    return {"results": results}


def _s3_error_code(exc: BaseException) -> str | None:
    """S3's error code (SlowDown, AccessDenied, ...) of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None
