"""One S3 event, several objects: score every one, then say which must be retried.

An S3 notification may carry several records. Each is scored on its own (`score_object`); an
object that raises (S3 refusing or unreachable after the client's retries, a bug) does not stop
the others. The caller (the handler) raises once at the end when any outcome asks for a retry,
so Lambda retries the whole event; the retry skips every object whose succeeded summary already
exists for the same ETag and model (`score_object`'s "skipped"), so only the failed ones are
effectively redone, and outputs stay one set per input key + ETag + model version.

Time is shared by the records of one invocation. Once an object has been scored, the next one is
started only while more than the safety margin is left; the ones that do not fit are deferred to
the retry untouched. An object other than the first that runs out of time part-way gets its
`time_budget_exceeded` summary like any other, and is retried too: it may well fit in an
invocation of its own (if it is alone and still runs out, the failure is its size, and final).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.scoring import s3_error_code, score_object
from onnxlambda.batch.writer import S3Client
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One record of an S3 event: the object as the event names it (key URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None  # as the event states it: which path scores the object (batch.route)


class Deferred(Exception):  # noqa: N818 - an outcome, not an error of this code
    """Not scored in this invocation (the time budget went to the event's earlier objects)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one record: its summary, and the error that makes it worth a retry."""

    ref: ObjectRef
    summary: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def retry(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        if self.summary is not None:
            return str(self.summary["status"])
        return "deferred" if isinstance(self.error, Deferred) else "error"


class BatchEventError(Exception):
    """Some objects of the event must be retried; the message names them and why."""

    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        failed = [o for o in outcomes if o.retry]
        reasons = "; ".join(f"{o.ref.bucket}/{o.ref.key}: {_why(o.error)}" for o in failed)
        super().__init__(
            f"{len(failed)} of {len(outcomes)} objects of the event were not scored and are left "
            f"to the retry (the others are done and will be skipped): {reasons}"
        )
        self.outcomes = list(outcomes)


def _why(error: BaseException | None) -> str:
    name = type(error).__name__
    code = s3_error_code(error) if error is not None else None
    return f"{name} {code}" if code and code != name else name


def score_event(
    s3: S3Client,
    runtime: ModelRuntime,
    validator: Validator,
    config: BatchConfig,
    refs: Sequence[ObjectRef],
    *,
    remaining_ms: Callable[[], int] | None = None,
    redactor: Redactor | None = None,
) -> list[Outcome]:
    """Score every object of the event in order; never raise for one object's failure."""
    outcomes: list[Outcome] = []
    spent = False  # an object has been read in this invocation: the full budget is no longer ours
    for ref in refs:
        if spent and remaining_ms is not None and remaining_ms() < config.time_margin_ms:
            outcomes.append(Outcome(ref, error=Deferred("the time budget went to earlier objects")))
            continue
        try:
            summary = score_object(
                s3,
                runtime,
                validator,
                config,
                bucket=ref.bucket,
                key=ref.key,
                version_id=ref.version_id,
                etag=ref.etag,
                remaining_ms=remaining_ms,
                redactor=redactor,
            )
        except Exception as exc:  # S3 after its retries, a bug: the others still get scored
            outcomes.append(Outcome(ref, error=exc))
            spent = True
            continue
        late = spent and (summary.get("error") or {}).get("code") == "time_budget_exceeded"
        error = Deferred("ran out of time after earlier objects of the event") if late else None
        outcomes.append(Outcome(ref, summary, error))
        spent = spent or summary["status"] in {"succeeded", "failed"}
    return outcomes


__all__ = ["BatchEventError", "Deferred", "ObjectRef", "Outcome", "score_event"]
