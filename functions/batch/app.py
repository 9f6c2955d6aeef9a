"""Batch function: S3 ObjectCreated (input prefix) -> onnxlambda.batch.route.route_event.

Transport only: read the event's records, call the core with an S3 client, log and count each
outcome. Objects at least ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES large start a Step Functions execution
instead of being scored here (onnxlambda.batch.route; docs/batch.md "Which path"). What to do
with bad rows, unreadable or vanished files and the time budget is decided in the core
(layers/core/onnxlambda/batch/). Every record is scored; if any could not be (S3 unreachable or
refusing after the client's retries, a bug, no time left), the handler raises once
at the end, after logging each with the object, the error type and S3's error code: Lambda
retries the event, the retry skips the objects already scored, and after the retries the event
goes to the on-failure destination (SQS). A model that did not load raises at once. The S3
client's retries, backoff and timeouts are configured in onnxlambda/batch/s3.py.
"""

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda.batch.event import BatchEventError, ObjectRef, Outcome
from onnxlambda.batch.route import route_event
from onnxlambda.batch.scoring import s3_error_code
from onnxlambda.serving.service import get_service

if __package__:  # imported as functions.batch.<module> (tests, tools)
    from functions.batch import environment
else:  # on Lambda the function's directory is the root: sibling modules are top-level
    import environment  # type: ignore[import-not-found,no-redef]

logger = Logger()
metrics = Metrics()
# Shared with the other batch function (environment.py); the names stay here for the handler below.
config = environment.config
distributed = environment.distributed
s3_client = environment.s3_client
environment.prepare(logger, "every event will fail and be retried")

_sfn: Any = None


def sfn_client() -> Any:
    """Step Functions, for objects that take the distributed path: created when first needed."""
    global _sfn  # noqa: PLW0603 - one client per execution environment
    if _sfn is None:
        import boto3

        _sfn = boto3.client("stepfunctions")
    return _sfn


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = get_service()  # raises if the model did not load: retried, then on-failure queue
    refs = [
        ObjectRef(
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.get_object.key),  # S3 event keys are URL-encoded
            version_id=record.s3.get_object.version_id,
            etag=record.s3.get_object.etag or None,
            size=record.s3.get_object.size,
        )
        for record in S3Event(event).records
    ]
    outcomes = route_event(
        s3_client(),
        sfn_client,
        service.runtime,
        service.validator,
        config,
        distributed,
        refs,
        remaining_ms=context.get_remaining_time_in_millis,
        redactor=service.redactor,
    )
    for outcome in outcomes:
        _report(outcome)
    if any(o.retry for o in outcomes):
        first = next(o.error for o in outcomes if o.error is not None)
        raise BatchEventError(outcomes) from first
    return {"results": [_result(o) for o in outcomes]}


def _report(outcome: Outcome) -> None:
    """One log line and the metrics of one record."""
    ref, summary, error = outcome.ref, outcome.summary or {}, outcome.error
    where = {"bucket": ref.bucket, "key": ref.key, "status": outcome.status}
    if error is not None and summary:
        logger.warning("batch object left to the retry", extra={**where, "reason": str(error)})
    elif error is not None:
        # Uploads are aborted by now; the event is retried once every record has had its turn.
        logger.error(
            "batch object failed; left to Lambda's retry and the on-failure destination",
            extra={**where, "error_type": type(error).__name__, "s3_error_code": s3_error_code(error)},
            exc_info=error,
        )
    if summary:
        logger.info(
            "batch object done",
            extra={**where, "rows": summary.get("rows"), "error": summary.get("error")},
        )
    # Dimension `service` only, as for the API: alarms name metrics across model releases;
    # the model version rides along as metadata.
    metrics.add_metric(name=f"BatchFiles_{outcome.status}", unit=MetricUnit.Count, value=1)
    if summary.get("model"):
        metrics.add_metadata(key="model", value=summary["model"])
    rows = summary.get("rows")
    if rows and outcome.status in {"succeeded", "failed"}:  # a skipped file was counted when scored
        metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=rows["scored"])
        metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=rows["rejected"])


def _result(outcome: Outcome) -> dict[str, Any]:
    summary = outcome.summary or {}
    return {
        "status": outcome.status,
        "key": outcome.ref.key,
        "rows": summary.get("rows", {}),
        "lines": summary.get("lines", {}),
        "error": summary.get("error") or summary.get("reason"),
        "summary": summary.get("output", {}).get("summary"),
        **({"execution": summary["execution"]} if "execution" in summary else {}),
    }
