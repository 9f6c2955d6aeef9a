"""Range function: the tasks of the large-object state machine (statemachines/score_large_object.asl.json).

Transport only. Step Functions invokes it (arn:aws:states:::lambda:invoke) with a payload whose
`action` names the step; each step is in the core (layers/core/onnxlambda/batch/):

    plan            onnxlambda.batch.plan.plan_object      the object's ranges, or why not
    score_range     onnxlambda.batch.ranges.score_range    one Map child: one range into parts
    range_failed    onnxlambda.batch.ranges.record_failure a range that failed after its retries
    merge           onnxlambda.batch.merge.merge_run       the parts into the three outputs
    report_failure  onnxlambda.batch.merge.report_failure  a failed run's summary.json

Every payload and every answer holds keys, byte offsets and counts, never a row (execution
history and the Map Run's ResultWriter files keep them). An exception leaves as the task's error;
with ONNXLAMBDA_REDACT_FIELDS set its message is withheld there too (`WithheldError`: the type only), as in
the logs. The model loads once per execution environment, like the batch function's.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda import settings as settings_catalogue
from onnxlambda.batch.job import Job, Range
from onnxlambda.batch.merge import merge_run, report_failure
from onnxlambda.batch.plan import plan_object
from onnxlambda.batch.ranges import record_failure, score_range
from onnxlambda.contract.redaction import WithheldError
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
settings = environment.settings
s3_client = environment.s3_client
environment.prepare(logger, "every task will fail and be retried")


def this_version(context: LambdaContext) -> str:
    """The ARN of the function version running this invocation (the state machine invokes the
    `live` alias for the plan; every later task of the run invokes this very version)."""
    base = ":".join(context.invoked_function_arn.split(":")[:7])
    version = settings_catalogue.get("AWS_LAMBDA_FUNCTION_VERSION")
    return base if version in ("$LATEST", "local") else f"{base}:{version}"


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = str(event.get("action"))
    try:
        answer = _dispatch(action, event, context)
    except Exception as exc:
        logger.exception("step failed", extra={"action": action, "error_type": type(exc).__name__})
        metrics.add_metric(name=f"BatchStepFailed_{action}", unit=MetricUnit.Count, value=1)
        if settings.redact_fields:  # the task's error lands in execution history: no message
            raise WithheldError(
                f"{type(exc).__name__}: message withheld (ONNXLAMBDA_REDACT_FIELDS is set)"
            ) from None
        raise
    logger.info("step done", extra={"action": action, "answer": answer})
    metrics.add_metric(name=f"BatchStep_{action}", unit=MetricUnit.Count, value=1)
    return answer


def _dispatch(action: str, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = get_service()
    s3 = s3_client()
    if action == "plan":
        obj = event["object"]
        return plan_object(
            s3,
            service.manifest,
            config,
            distributed,
            bucket=obj["bucket"],
            key=obj["key"],
            version_id=obj.get("version_id"),
            etag=obj.get("etag"),
            execution=str(event.get("execution") or ""),
            function=this_version(context),
            remaining_ms=context.get_remaining_time_in_millis,
        )
    if action == "score_range":
        rng = Range.from_dict(event["range"])
        answer = score_range(
            s3,
            service.runtime,
            service.validator,
            Job.from_dict(event["job"]),
            rng,
            redactor=service.redactor,
            remaining_ms=context.get_remaining_time_in_millis,
            time_margin_ms=config.time_margin_ms,
            part_bytes=config.part_bytes,
            attempt=int(event.get("attempt") or 0),
        )
        metrics.add_metric(name="BatchRangeRows", unit=MetricUnit.Count, value=answer["rows"])
        return answer
    if action == "range_failed":
        return record_failure(
            s3, Job.from_dict(event["job"]), Range.from_dict(event["range"]), event["failure"]
        )
    if action == "merge":
        summary = merge_run(
            s3,
            service.runtime,
            service.validator,
            config,
            Job.from_dict(event["job"]),
            part_bytes=config.part_bytes,
            map_run=event.get("map"),
        )
        metrics.add_metric(name="BatchFiles_succeeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=summary["rows"]["scored"])
        metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=summary["rows"]["rejected"])
        return {"status": summary["status"], "summary": summary["output"]["summary"], "rows": summary["rows"]}
    if action == "report_failure":
        state = event["state"]
        metrics.add_metric(name="BatchFiles_failed", unit=MetricUnit.Count, value=1)
        return report_failure(
            s3,
            service.runtime,
            config,
            obj=state,
            plan=(state.get("plan") or {}).get("Payload"),  # the Plan task's answer, if it ran
            failure=state.get("failure") or {},
            execution=str(event.get("execution") or ""),
        )
    raise ValueError(f"unknown action {action!r}")
