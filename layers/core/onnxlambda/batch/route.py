"""Which path scores an object: this invocation, or a Step Functions execution.

An object smaller than `ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES` (the size the S3 event states) is scored here
by the single-invocation path (onnxlambda.batch.event), cheaper and quicker to start. A larger one
starts an execution of the state machine (onnxlambda.batch.job) and the invocation moves on.

Both paths keep the same guarantees:
- the recursion guard: a key outside the input prefix, or under the output prefix, is refused
  before anything is read or started;
- idempotence per object version: a succeeded summary of the same ETag and model makes the
  object "skipped"; otherwise the execution's name is derived from bucket, key, ETag and model
  (job.execution_name) and its input is the same JSON for the same event record. For Standard
  workflows "if you call StartExecution with the same name and input as a running execution, the
  call succeeds and return the same response as the original request. If the execution is closed
  or if the input is different, it returns a 400 ExecutionAlreadyExists error"
  (docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): a duplicate
  S3 event starts nothing new either way ("started" with `already: true`);
- failures: StartExecution refused or throttled after the client's retries raises, like an S3
  error on the single path: Lambda retries the event, then sends it to the on-failure queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from onnxlambda.batch.config import BatchConfig, output_keys, refusal
from onnxlambda.batch.event import ObjectRef, Outcome, score_event
from onnxlambda.batch.job import DistributedConfig, execution_name
from onnxlambda.batch.scorer import model_ref
from onnxlambda.batch.scoring import _already_scored, _etag, _summary_key, s3_error_code
from onnxlambda.batch.writer import S3Client
from onnxlambda.contract.manifest import Manifest
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

log = logging.getLogger(__name__)


def is_large(distributed: DistributedConfig, ref: ObjectRef) -> bool:
    return distributed.enabled and ref.size is not None and ref.size >= distributed.min_bytes


def execution_input(ref: ObjectRef) -> str:
    """The execution input: the object, as the event names it (deterministic JSON: the same
    record always gives the same bytes, which StartExecution's idempotence compares)."""
    return json.dumps(
        {
            "bucket": ref.bucket,
            "key": ref.key,
            "version_id": ref.version_id,
            "etag": ref.etag,
            "size": ref.size,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def start_distributed(
    s3: S3Client,
    sfn: Any,
    *,
    manifest: Manifest,
    config: BatchConfig,
    distributed: DistributedConfig,
    ref: ObjectRef,
) -> dict[str, Any]:
    """Refuse, skip, or start (once) the execution that scores this object; the outcome's summary."""
    model = model_ref(manifest)
    reason = refusal(config, ref.bucket, ref.key)
    if reason is not None:
        log.warning("object refused: %s", reason)
        return {
            "status": "refused",
            "reason": reason,
            "input": {"bucket": ref.bucket, "key": ref.key},
            "model": model,
        }
    etag = _etag(ref.etag)
    summary_key = _summary_key(config, ref.key, etag, manifest)
    previous = _already_scored(s3, ref.bucket, summary_key, etag, manifest) if etag else None
    if previous is not None:
        return {**previous, "status": "skipped", "reason": f"already scored: {summary_key}"}
    name = execution_name(ref.bucket, ref.key, etag, manifest.sha256)
    already = False
    try:
        answer = sfn.start_execution(
            stateMachineArn=distributed.state_machine_arn, name=name, input=execution_input(ref)
        )
        arn = str(answer["executionArn"])
    except Exception as exc:
        if s3_error_code(exc) != "ExecutionAlreadyExists":
            raise
        already = True  # a duplicate event: that execution scores (or scored) this version
        arn = f"{str(distributed.state_machine_arn).replace(':stateMachine:', ':execution:')}:{name}"
    keys = output_keys(config, ref.key, etag or "unknown", manifest, None)
    return {
        "status": "started",
        "reason": f"{ref.size} bytes: at least BATCH_DISTRIBUTED_MIN_BYTES={distributed.min_bytes}",
        "input": {
            "bucket": ref.bucket,
            "key": ref.key,
            "version_id": ref.version_id,
            "etag": etag,
            "bytes": ref.size,
        },
        "model": model,
        "execution": {"arn": arn, "name": name, "already": already},
        "output": {"prefix": keys.base, "summary": keys.summary},
    }


def route_event(  # noqa: PLR0917 - the single path's arguments, and the distributed path's
    s3: S3Client,
    sfn: Callable[[], Any],
    runtime: ModelRuntime,
    validator: Validator,
    config: BatchConfig,
    distributed: DistributedConfig,
    refs: Sequence[ObjectRef],
    *,
    remaining_ms: Callable[[], int] | None = None,
    redactor: Redactor | None = None,
) -> list[Outcome]:
    """Every record of the event, in order: large objects start executions (first: one quick
    call each), the others are scored here (onnxlambda.batch.event.score_event)."""
    outcomes: dict[int, Outcome] = {}
    small: list[int] = []
    for i, ref in enumerate(refs):
        if not is_large(distributed, ref):
            small.append(i)
            continue
        try:
            summary = start_distributed(
                s3, sfn(), manifest=runtime.manifest, config=config, distributed=distributed, ref=ref
            )
        except Exception as exc:  # StartExecution or S3 after their retries: left to Lambda's retry
            outcomes[i] = Outcome(ref, error=exc)
        else:
            outcomes[i] = Outcome(ref, summary)
    scored = score_event(
        s3,
        runtime,
        validator,
        config,
        [refs[i] for i in small],
        remaining_ms=remaining_ms,
        redactor=redactor,
    )
    outcomes.update(zip(small, scored, strict=True))
    return [outcomes[i] for i in range(len(refs))]


__all__ = ["execution_input", "is_large", "route_event", "start_distributed"]
