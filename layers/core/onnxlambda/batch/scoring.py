"""Batch scoring of one S3 object: stream it in chunks, score, write output, errors and a summary.

One object in, three objects out under the output prefix, at keys derived from the input key,
its ETag and the model version (so a retry of the same event overwrites, never duplicates):

    <output prefix><input key minus input prefix>/etag=<etag>/model=<name>-<version>/
        scored.csv|scored.jsonl   one row per scored input row: row number, id, pass-through, prediction
        errors.jsonl              one line per rejected row: row, line (and end_line), every reason,
                                  the raw input
        summary.json              counts of rows and of physical lines, duration, model identity,
                                  drift (PSI/JS, bin counts) vs the manifest

Every physical line is accounted for: lines.total = header + blank + lines of scored rows + lines
of rejected rows (onnxlambda.batch.readers); a file for which that does not hold fails
(`accounting_mismatch`) rather than pass for a success.

Memory is bounded by the chunk size and the multipart part size, not by the file: rows are
read, validated, scored and written one chunk at a time.

Failure policy:
- a bad row: rejected into errors.jsonl, the rest is scored;
- a file that cannot be read (empty, not UTF-8, binary, no header, missing columns, unknown
  format) or an object that is gone (NoSuchKey / NoSuchVersion: `not_found`): no scored file;
  summary.json with status "failed" and the reason; input untouched; nothing raised, as a retry
  would fail the same way;
- the time budget running out: the same clear failure report (status "failed",
  code "time_budget_exceeded") written before Lambda would kill the invocation;
- an object whose succeeded summary for the same ETag and model (sha256) exists: "skipped",
  nothing rewritten (a retried event redoes only what failed; onnxlambda.batch.event);
- anything else (S3 unreachable or throttling after the client's retries, access denied, a
  bug): parts are aborted and the exception is raised; the event's other objects are still
  scored, then Lambda retries the event and finally sends it to the on-failure destination.

What a consumer may rely on (the completion contract): the scored and errors files appear only
when their upload completes, and that happens only after the whole input was read and scored;
the two complete side by side (each its own round trip), and summary.json is written only once
both have. So summary.json with status "succeeded" is the marker that the two files hold every
row; a run killed at any point before it (Lambda's timeout, a crash) leaves no scored file or an
older complete one of the same input, never a partial one, and the retried event rewrites all
three.

Rows written to errors.jsonl pass through the configured `Redactor` (ONNXLAMBDA_REDACT_FIELDS): a
redacted field's value and any message quoting it are replaced; raw input that cannot be
mapped to fields (a CSV record with the wrong field count, a line that could not be parsed)
is withheld whole while redaction is configured.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from onnxlambda.batch.config import BatchConfig, OutputKeys, output_keys, refusal
from onnxlambda.batch.files import CONTENT_TYPES, FileError, Format, byte_chunks, detect_format, text_lines
from onnxlambda.batch.readers import CsvReader, LineCounts, reader_for
from onnxlambda.batch.scorer import Scorer, model_ref
from onnxlambda.batch.summary import build_summary, read_json, write_summary
from onnxlambda.batch.writer import MultipartWriter, S3Client, abort_all, background, complete_all, wait_for
from onnxlambda.contract.manifest import Manifest
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

log = logging.getLogger(__name__)


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


# S3 error codes that mean the object named in the event is gone for good: deleted (or that
# version removed) before it could be scored. A retry would find it gone again.
GONE = frozenset({"NoSuchKey", "NoSuchVersion"})


def s3_error_code(exc: BaseException) -> str | None:
    """S3's error code (SlowDown, NoSuchKey, ...) of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def score_object(
    s3: S3Client,
    runtime: ModelRuntime,
    validator: Validator,
    config: BatchConfig,
    *,
    bucket: str,
    key: str,
    version_id: str | None = None,
    etag: str | None = None,
    remaining_ms: Callable[[], int] | None = None,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """Score one object; return the summary (also written to S3 unless the key was refused or
    the object was already scored).

    `etag` is the event's (it names the output when the object is gone). Statuses: "succeeded",
    "failed" (the file or the object cannot be scored; retrying would not help), "skipped" (a
    succeeded summary for this object's ETag and this model already exists: a retried event
    does not redo it), "refused" (recursion guard). Anything else raises (see module docstring).
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = runtime.manifest
    reason = refusal(config, bucket, key)
    if reason is not None:
        log.warning("object refused: %s", reason)
        return {
            "status": "refused",
            "reason": reason,
            "input": {"bucket": bucket, "key": key},
            "model": model_ref(manifest),
        }

    fmt: Format | None = None
    failure: FileError | None = None
    try:
        fmt = detect_format(key)
    except FileError as exc:
        failure = exc
    # Was it scored already (a retried event)? Asked for the event's ETag while the object is
    # opened, and answered while its first chunk is scored: nothing waits for it but the second
    # chunk (or the end of a one-chunk file). Asked again if the object has another ETag.
    said = _etag(etag)
    check = (
        background().submit(
            _already_scored, s3, bucket, _summary_key(config, key, said, manifest), said, manifest
        )
        if said
        else None
    )
    obj, gone = _open(s3, bucket, key, version_id, etag)
    etag = _etag(obj.get("ETag")) or "unknown"
    if gone is not None:
        fmt, failure = None, gone
    elif check is None or etag != said:
        check = background().submit(
            _already_scored, s3, bucket, _summary_key(config, key, etag, manifest), etag, manifest
        )
    gate = _Gate(check if gone is None else None)
    size = int(obj.get("ContentLength") or 0)
    if failure is None and config.max_bytes and size > config.max_bytes:
        failure = FileError(
            "too_large",
            f"the object is {size} bytes; one invocation scores at most {config.max_bytes} "
            "(ONNXLAMBDA_BATCH_MAX_BYTES): split it and upload the parts",
        )
    source = {
        "bucket": bucket,
        "key": key,
        "version_id": obj.get("VersionId") or version_id,
        "etag": etag,
        "bytes": size,
        "format": fmt,
    }
    keys = output_keys(config, key, etag, manifest, fmt)
    scorer = Scorer(runtime, validator, fmt or "csv", config.id_column, redactor)
    try:
        writers, counts, failure = _score_body(
            s3, obj["Body"], bucket, keys, fmt, failure, scorer, config, remaining_ms, gate
        )
        if failure is not None:
            abort_all(*writers)
            gate.verify()  # never overwrite an earlier success with a failure of the same bytes
    except _AlreadyScored as done:
        log.info("object already scored: %s", keys.summary)
        return {**done.summary, "status": "skipped", "reason": f"already scored: {keys.summary}"}
    ok = failure is None
    closing = complete_all(*writers) if ok else None
    drift = scorer.drift() if ok else None  # computed while the two files complete
    wait_for(closing, writers)
    summary = build_summary(
        ok=ok,
        source=source,
        keys=keys,
        manifest=manifest,
        rows={"read": scorer.rows_read, "scored": scorer.rows_scored, "rejected": scorer.rows_rejected},
        lines={
            "total": counts.total,
            "header": counts.header,
            "blank": counts.blank,
            "scored": scorer.lines_scored,
            "rejected": scorer.lines_rejected,
        },
        rejected_by_code=scorer.rejected_by_code,
        started_at=started_at,
        duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
        drift=drift,
        # Which path scored it; the Step Functions path writes the same document with its own.
        scored_by={"path": "single_invocation"},
        error=None if failure is None else {"code": failure.code, "message": failure.message},
    )
    write_summary(s3, bucket, keys.summary, summary)
    return summary


def _open(
    s3: S3Client, bucket: str, key: str, version_id: str | None, etag: str | None
) -> tuple[dict[str, Any], FileError | None]:
    """GetObject; an object that is gone is a permanent failure (an empty stand-in with the
    event's ETag, and the reason), anything else S3 refuses raises so that Lambda retries."""
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    try:
        return dict(s3.get_object(**request)), None
    except Exception as exc:
        code = s3_error_code(exc)
        if code not in GONE:
            raise
        missing = {"ETag": etag, "VersionId": version_id, "ContentLength": 0, "Body": io.BytesIO()}
        return missing, FileError("not_found", f"the object is gone ({code}): deleted before it was scored")


def _score_body(  # noqa: PLR0917 - one call site; the pieces of one file's run
    s3: S3Client,
    body: Any,
    bucket: str,
    keys: OutputKeys,
    fmt: Format | None,
    failure: FileError | None,
    scorer: Scorer,
    config: BatchConfig,
    remaining_ms: Callable[[], int] | None,
    gate: _Gate,
) -> tuple[tuple[MultipartWriter, MultipartWriter], LineCounts, FileError | None]:
    """Stream the body into the scored and errors files (not completed yet); return them,
    where the file's lines went, and the failure, if any."""
    scored = MultipartWriter(s3, bucket, keys.scored, CONTENT_TYPES[fmt or "csv"], config.part_bytes)
    errors = MultipartWriter(s3, bucket, keys.errors, "application/x-ndjson", config.part_bytes)
    counts = LineCounts()
    try:
        if failure is None and fmt is not None:
            counts = _stream(body, fmt, scorer, config, scored, errors, remaining_ms, gate)
            for writer in (scored, errors):  # a part upload that failed fails the file here,
                writer.settle()  # before either file can be completed
    except FileError as exc:
        failure = exc
    except BaseException:
        abort_all(scored, errors)
        raise
    finally:
        body.close()
    return (scored, errors), counts, failure


class _AlreadyScored(Exception):  # noqa: N818 - a way out, not an error
    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary["output"]["summary"])
        self.summary = summary


class _Gate:
    """The answer to "scored already?", asked in the background and waited for only when a
    second chunk would be scored, or before any output is completed or any summary written."""

    def __init__(self, check: Future[dict[str, Any] | None] | None) -> None:
        self._check = check

    def verify(self) -> None:
        """Raise _AlreadyScored if a succeeded summary of these bytes and this model exists
        (S3 errors of the check raise here, in the caller's thread)."""
        previous = self._check.result() if self._check is not None else None
        if previous is not None:
            raise _AlreadyScored(previous)


def _summary_key(config: BatchConfig, key: str, etag: str, manifest: Manifest) -> str:
    return output_keys(config, key, etag, manifest, None).summary


def _already_scored(
    s3: S3Client, bucket: str, summary_key: str, etag: str, manifest: Manifest
) -> dict[str, Any] | None:
    """The summary of an earlier run that scored these very bytes with this very model, if any.

    Listed first (s3:ListBucket on the output prefix), so a missing summary is an empty listing
    rather than a 403/404 to tell apart; read only when it exists. Unreadable: score again, which
    rewrites it."""
    previous = read_json(s3, bucket, summary_key)
    if previous is None:
        return None
    same = (
        previous.get("status") == "succeeded"
        and (previous.get("input") or {}).get("etag") == etag
        and (previous.get("model") or {}).get("sha256") == manifest.sha256
    )
    return previous if same else None


def _stream(  # noqa: PLR0917 - one call site; the pieces of one file's run
    body: Any,
    fmt: Format,
    scorer: Scorer,
    config: BatchConfig,
    scored: MultipartWriter,
    errors: MultipartWriter,
    remaining_ms: Callable[[], int] | None,
    gate: _Gate,
) -> LineCounts:
    """Read, score and write chunk by chunk; return where the file's lines went. Raise FileError
    for an unreadable file, when the time budget runs out (before the next chunk, never half-way
    through one), or when the lines do not add up (a bug must not pass for a success)."""
    reader = reader_for(
        fmt,
        scorer.manifest,
        chunk_rows=config.chunk_rows,
        id_column=config.id_column,
        max_text_cell_chars=config.max_text_cell_chars,
    )
    for n, chunk in enumerate(reader.chunks(text_lines(byte_chunks(body)))):
        if n == 1:
            gate.verify()
        left = remaining_ms() if remaining_ms is not None else None
        if left is not None and left < config.time_margin_ms:
            raise FileError(
                "time_budget_exceeded",
                f"stopped with {left} ms left after {scorer.rows_read} rows; nothing was written "
                "but this report. Split the file into parts below the size docs/batch.md states for "
                "one invocation, and upload the parts.",
            )
        scorer.score(chunk, scored, errors)
    gate.verify()
    if isinstance(reader, CsvReader):
        scorer.finish_csv_header(reader.carry_columns, scored)
    counts = reader.counts
    accounted = counts.header + counts.blank + scorer.lines_scored + scorer.lines_rejected
    if accounted != counts.total or scorer.rows_read != scorer.rows_scored + scorer.rows_rejected:
        raise FileError(
            "accounting_mismatch",
            f"{counts.total} lines read but {accounted} accounted for ({counts.header} header, "
            f"{counts.blank} blank, {scorer.lines_scored} scored, {scorer.lines_rejected} rejected); "
            "nothing was written but this report: please report this file",
        )
    return counts


__all__ = ["GONE", "s3_error_code", "score_object"]
