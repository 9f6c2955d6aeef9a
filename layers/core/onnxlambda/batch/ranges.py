"""Score one range of a large object (one Distributed Map child): its part of the three outputs.

A range is read with the single path's reader from its first byte (`Span`: rows and lines keep the
numbers they have in the whole file; a CSV record that starts in the range is read to its end even
past the range), validated, scored and rendered by the single path's `Scorer`, into part objects
under the work prefix (onnxlambda.batch.job):

    parts/<index>.scored.csv|jsonl   the range's scored rows (CSV: with the header line first)
    parts/<index>.errors.jsonl       its rejected rows, redacted as the single path redacts them
    parts/<index>.json               its counts and drift bin counts, written last

Idempotent: the keys depend on the object version, the model and the range only, so a retried
child (Step Functions retries a task whose Lambda invoke failed, or whose response was lost)
overwrites the same objects; a part whose summary already exists for the same range is not
scored again (a re-run after a failed run redoes only the ranges that failed). The part summary
is written after both part files are complete, so its presence means the range is whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from onnxlambda.batch.files import CONTENT_TYPES, FileError, byte_chunks, text_lines
from onnxlambda.batch.job import Job, Range
from onnxlambda.batch.plan import BOM
from onnxlambda.batch.readers import Span, reader_for
from onnxlambda.batch.scorer import Scorer
from onnxlambda.batch.summary import read_json
from onnxlambda.batch.writer import MultipartWriter, S3Client, abort_all, complete_all, wait_for
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

log = logging.getLogger(__name__)


class RangeError(Exception):
    """A range that cannot be scored in this attempt (its message names the code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _PartWriter(MultipartWriter):
    """A MultipartWriter that remembers how long the first line it was given is (the CSV
    header line, which the merge leaves out of every part but writes once)."""

    first_line_bytes = 0

    def write(self, data: bytes) -> None:
        if not self.bytes_written and data:
            self.first_line_bytes = data.find(b"\n") + 1
        super().write(data)


def fingerprint(job: Job, rng: Range) -> dict[str, Any]:
    """What a part summary must match to stand for this range of this object and model."""
    return {
        "etag": job.etag,
        "model_sha256": job.model_sha256,
        "start": rng.start,
        "end": rng.end,
        "first_line": rng.first_line,
        "rows_before": rng.rows_before,
        "chunk_rows": job.chunk_rows,
    }


def part_summary(s3: S3Client, job: Job, rng: Range) -> dict[str, Any] | None:
    """The summary of this range's part, if a complete part for this very range exists."""
    found = read_json(s3, job.bucket, job.part(rng.index, "summary"))
    if found is None or found.get("fingerprint") != fingerprint(job, rng):
        return None
    return found


def _get(s3: S3Client, job: Job, first: int, last: int | None) -> Any:
    """The object's bytes first..last (inclusive; None: to the end), of the planned version."""
    request: dict[str, Any] = {
        "Bucket": job.bucket,
        "Key": job.key,
        "Range": f"bytes={first}-{'' if last is None else last}",
    }
    if job.version_id:
        request["VersionId"] = job.version_id
    else:  # an unversioned bucket: refuse another object written under the same key since
        request["IfMatch"] = f'"{job.etag}"'
    return s3.get_object(**request)["Body"]


def _stream(s3: S3Client, job: Job, rng: Range, opened: list[Any]) -> Iterator[bytes]:
    """The bytes the reader gets: the file's own from byte 0 for the first range; else the header
    line (CSV) then the range. A range that does not start at byte 0 is preceded by a BOM that the
    decoder removes, so a U+FEFF at its start stays data as in the whole file, and the sniffing of
    binary formats looks at that BOM, not at a row that happens to start like a zip header."""
    pieces: list[Iterator[bytes]] = []
    first_byte = rng.start
    if job.format == "csv" and rng.first_line > 1:
        header = _get(s3, job, job.header_start, job.header_end - 1)
        opened.append(header)
        pieces.append(byte_chunks(header))
        first_byte = job.header_start
    if first_byte > 0:
        pieces.insert(0, iter([BOM]))
    if rng.start < job.size:
        # CSV: to the end of the object, read only as far as the range's last record needs;
        # JSON Lines records are lines: the range's bytes are enough.
        body = _get(s3, job, rng.start, rng.end - 1 if job.format == "jsonl" else None)
        opened.append(body)
        pieces.append(byte_chunks(body))
    return chain.from_iterable(pieces)


def score_range(
    s3: S3Client,
    runtime: ModelRuntime,
    validator: Validator,
    job: Job,
    rng: Range,
    *,
    redactor: Redactor | None = None,
    remaining_ms: Callable[[], int] | None = None,
    time_margin_ms: int = 20_000,
    part_bytes: int = 8 * 1024 * 1024,
    attempt: int = 0,
) -> dict[str, Any]:
    """Score the range into its part objects; return what the Map Run records (no row)."""
    started = time.perf_counter()
    manifest = runtime.manifest
    if manifest.sha256 != job.model_sha256:
        raise RangeError(
            "model_mismatch",
            f"this function serves model sha256 {manifest.sha256}, the run was planned for "
            f"{job.model_sha256}: every task of a run must run on the planner's function version",
        )
    done = part_summary(s3, job, rng)
    if done is not None:
        log.info("range already scored", extra={"index": rng.index})
        return {"index": rng.index, "status": "skipped", "rows": done["rows"]["read"]}
    scorer = Scorer(runtime, validator, job.format, job.id_column, redactor)
    scored = _PartWriter(s3, job.bucket, job.part(rng.index, "scored"), CONTENT_TYPES[job.format], part_bytes)
    errors = _PartWriter(s3, job.bucket, job.part(rng.index, "errors"), "application/x-ndjson", part_bytes)
    span = Span(rows_before=rng.rows_before, first_line=rng.first_line, last_line=rng.last_line)
    reader = reader_for(
        job.format,
        manifest,
        chunk_rows=job.chunk_rows,
        id_column=job.id_column,
        max_text_cell_chars=job.max_text_cell_chars,
        span=span,
    )
    opened: list[Any] = []
    try:
        for chunk in reader.chunks(text_lines(_stream(s3, job, rng, opened))):
            left = remaining_ms() if remaining_ms is not None else None
            if left is not None and left < time_margin_ms:
                raise RangeError(
                    "time_budget_exceeded",
                    f"range {rng.index} stopped with {left} ms left after {scorer.rows_read} rows: "
                    "lower ONNXLAMBDA_BATCH_RANGE_BYTES",
                )
            scorer.score(chunk, scored, errors)
        for writer in (scored, errors):
            writer.settle()
        counts = _accounted(job, rng, reader.counts, scorer)
    except FileError as exc:  # found by the planner already, so a bug or a changed object
        abort_all(scored, errors)
        raise RangeError(exc.code, exc.message) from exc
    except BaseException:
        abort_all(scored, errors)
        raise
    finally:
        for body in opened:
            body.close()
    wait_for(complete_all(scored, errors), (scored, errors))
    summary = {
        "index": rng.index,
        "fingerprint": fingerprint(job, rng),
        "rows": {"read": scorer.rows_read, "scored": scorer.rows_scored, "rejected": scorer.rows_rejected},
        "lines": counts,
        "rejected_by_code": dict(sorted(scorer.rejected_by_code.items())),
        "drift": {
            "features": {name: _bins(c) for name, c in scorer.feature_drift.items()},
            "output": _bins(scorer.output_drift),
        },
        "scored_bytes": scored.bytes_written,
        "scored_header_bytes": scored.first_line_bytes if job.format == "csv" else 0,
        "errors_bytes": errors.bytes_written,
        "attempt": attempt,
        "duration_ms": round((time.perf_counter() - started) * 1000.0, 1),
    }
    s3.put_object(
        Bucket=job.bucket,
        Key=job.part(rng.index, "summary"),
        Body=json.dumps(summary).encode("utf-8"),
        ContentType="application/json",
    )
    return {"index": rng.index, "status": "scored", "rows": scorer.rows_read}


def _bins(counts: Any) -> dict[str, Any]:
    return {"counts": [int(c) for c in counts.counts], "missing": int(counts.missing)}


def _accounted(job: Job, rng: Range, counts: Any, scorer: Scorer) -> dict[str, int]:
    """The range's lines, checked against the plan: every line of it is the header (first range),
    blank, or inside exactly the rows the planner counted there."""
    borrowed = 1 if job.format == "csv" and rng.first_line > 1 else 0  # the header line read first
    lines = {
        "total": counts.total - borrowed,
        "header": counts.header - borrowed,
        "blank": counts.blank,
        "scored": scorer.lines_scored,
        "rejected": scorer.lines_rejected,
    }
    accounted = lines["header"] + lines["blank"] + lines["scored"] + lines["rejected"]
    expected = (rng.lines, rng.header_lines, rng.blank, rng.rows)
    got = (lines["total"], lines["header"], lines["blank"], scorer.rows_read)
    if accounted != lines["total"] or got != expected:
        raise RangeError(
            "accounting_mismatch",
            f"range {rng.index}: (lines, header, blank, rows) {got} read where the plan has {expected} "
            f"({accounted} lines accounted for): please report this file",
        )
    return lines


def record_failure(s3: S3Client, job: Job, rng: Range, failure: dict[str, Any]) -> dict[str, Any]:
    """After a range's retries: write why it failed next to its part (the merge reports it)."""
    note = {
        "index": rng.index,
        "fingerprint": fingerprint(job, rng),
        "error": str(failure.get("Error") or "unknown")[:200],
        "cause": str(failure.get("Cause") or "")[:2000],
    }
    s3.put_object(
        Bucket=job.bucket,
        Key=job.part(rng.index, "failed"),
        Body=json.dumps(note).encode("utf-8"),
        ContentType="application/json",
    )
    return {"index": rng.index, "status": "failed"}


__all__ = ["RangeError", "fingerprint", "part_summary", "record_failure", "score_range"]
