"""Merge a Step Functions run's parts into the single path's three outputs, summary.json last.

A little over ~400 lines: the assembly by UploadPartCopy and the failed-range accounting share the
ordering and completion rules stated here.

    scored.csv|jsonl   the CSV header once, then every range's scored part without its header,
                       in range order (= row order: ranges are consecutive runs of rows)
    errors.jsonl       every range's errors part in range order; a range that failed after its
                       retries (within ToleratedFailurePercentage) contributes one line per row
                       it holds, code `range_failed`: nothing is dropped silently
    summary.json       counts and rejected_by_code summed over the ranges, drift computed once from
                       the summed bin counts (they add: onnxlambda.monitoring.drift), the same
                       document as the single path's with `scored_by` saying which path

The two files are multipart uploads assembled from the parts with UploadPartCopy (S3 copies the
bytes; parts of at least 5 MiB, S3's minimum for every part but the last:
docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html) and uploads of the pieces too
small to be parts on their own; they appear only when complete, and summary.json is written after
both, so the single path's completion contract holds. A failed merge leaves no partial file and is
retried as a whole; so is a failed run, by a new execution (the ranges already scored are kept).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from onnxlambda.batch.config import BatchConfig, OutputKeys, output_keys
from onnxlambda.batch.files import CONTENT_TYPES, FileError, detect_format
from onnxlambda.batch.job import Job, Range
from onnxlambda.batch.ranges import part_summary
from onnxlambda.batch.scorer import Scorer
from onnxlambda.batch.scoring import _already_scored, _etag, _summary_key
from onnxlambda.batch.summary import build_summary, failed_summary, read_json, write_summary
from onnxlambda.batch.writer import MIN_PART_BYTES, S3Client
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

log = logging.getLogger(__name__)

MAX_COPY_BYTES = 5 * 1024**3  # S3's largest part


class MergeClient(S3Client, Protocol):
    def upload_part_copy(self, **kwargs: Any) -> Any: ...
    def delete_objects(self, **kwargs: Any) -> Any: ...


class Assembler:
    """One object made of byte spans of other objects of the same bucket and of literal bytes,
    in order: spans of at least 5 MiB are copied by S3 (UploadPartCopy), smaller pieces are read
    and uploaded in parts of `part_bytes`. Up to `in_flight` parts are copied or uploaded at once
    (numbered in order, completed in order). Nothing is visible until `close()`; `abort()` drops it."""

    def __init__(  # noqa: PLR0917 - where, what, and how
        self, s3: MergeClient, bucket: str, key: str, content_type: str, part_bytes: int, in_flight: int = 8
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="merge-part")
        self._slots = threading.BoundedSemaphore(in_flight)  # bounds the bytes held by uploads in flight
        self.bytes = 0
        self.copied_bytes = 0

    def add_bytes(self, data: bytes) -> None:
        self._buffer += data
        self.bytes += len(data)
        if len(self._buffer) >= self._part_bytes:
            self._upload(bytes(self._buffer))
            self._buffer.clear()

    def add_object(self, key: str, start: int, end: int) -> None:
        """Bytes [start, end) of `key`."""
        while start < end:
            if not self._buffer and end - start >= MIN_PART_BYTES:
                n = min(end - start, MAX_COPY_BYTES)
                if 0 < end - start - n < MIN_PART_BYTES:  # never leave a remainder too small to copy
                    n -= MIN_PART_BYTES
                self._copy(key, start, start + n)
                start += n
                continue
            n = min(end - start, self._part_bytes - len(self._buffer))
            body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + n - 1}")[
                "Body"
            ]
            try:
                self.add_bytes(body.read())
            finally:
                body.close()
            start += n

    def _create(self) -> str:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self._content_type
            )
            self._upload_id = str(created["UploadId"])
        return self._upload_id

    def _submit(self, call: Callable[[str, int], dict[str, Any]]) -> None:
        upload_id = self._create()
        number = len(self._parts) + 1
        self._slots.acquire()

        def run() -> dict[str, Any]:
            try:
                return call(upload_id, number)
            finally:
                self._slots.release()

        self._parts.append(self._pool.submit(run))

    def _upload(self, data: bytes) -> None:
        def upload(upload_id: str, number: int) -> dict[str, Any]:
            answer = self._s3.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
            )
            return {"PartNumber": number, "ETag": answer["ETag"]}

        self._submit(upload)

    def _copy(self, key: str, start: int, end: int) -> None:
        def copy(upload_id: str, number: int) -> dict[str, Any]:
            answer = self._s3.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": key},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        self._submit(copy)
        self.bytes += end - start
        self.copied_bytes += end - start

    def close(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            if self._buffer:
                self._upload(bytes(self._buffer))
            parts = [future.result() for future in self._parts]  # the first error raises here
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._buffer.clear()
        self._pool.shutdown()

    def abort(self) -> None:
        self._buffer.clear()
        self._pool.shutdown(cancel_futures=True)  # waits for the parts in flight: the abort drops them too
        if self._upload_id is not None:
            try:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            except Exception as exc:  # the bucket's lifecycle rule removes what is left
                log.warning("could not abort the upload of %s: %s", self.key, type(exc).__name__)


def read_ranges(s3: S3Client, job: Job) -> list[Range]:
    body = s3.get_object(Bucket=job.bucket, Key=job.manifest_key)["Body"]
    try:
        return [Range.from_dict(r) for r in json.loads(body.read())]
    finally:
        body.close()


def _source(job: Job) -> dict[str, Any]:
    return {
        "bucket": job.bucket,
        "key": job.key,
        "version_id": job.version_id,
        "etag": job.etag,
        "bytes": job.size,
        "format": job.format,
    }


def _keys(config: BatchConfig, job: Job, runtime: ModelRuntime) -> OutputKeys:
    keys = output_keys(config, job.key, job.etag, runtime.manifest, job.format)
    if keys.base != job.output_base:
        raise FileError(
            "accounting_mismatch", f"output base {keys.base} differs from the plan's {job.output_base}"
        )
    return keys


def _failed_range_lines(rng: Range, why: str) -> bytes:
    """One errors.jsonl line per row of a range that could not be scored (shape of a rejected row)."""
    error = json.dumps([{"field": "(row)", "code": "range_failed", "message": why}])
    first = rng.rows_before + 1
    return "".join(
        f'{{"row": {n}, "errors": {error}, "input": null}}\n' for n in range(first, first + rng.rows)
    ).encode("utf-8")


def merge_run(  # noqa: PLR0915 - one run's outputs, in order
    s3: MergeClient,
    runtime: ModelRuntime,
    validator: Validator,
    config: BatchConfig,
    job: Job,
    *,
    part_bytes: int = 8 * 1024 * 1024,
    map_run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Merge step: assemble the outputs from the parts, then write summary.json.

    A merge retried after it completed (its response lost) finds its succeeded summary and
    returns it: the parts it merged are gone by then, the outputs are whole."""
    keys = _keys(config, job, runtime)
    done = _already_scored(s3, job.bucket, keys.summary, job.etag, runtime.manifest)
    if done is not None:
        log.info("already merged: %s", keys.summary)
        return done
    ranges = read_ranges(s3, job)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="merge-read") as pool:
        parts = list(pool.map(lambda r: part_summary(s3, job, r), ranges))
        notes = list(
            pool.map(
                lambda rp: (
                    None if rp[1] is not None else read_json(s3, job.bucket, job.part(rp[0].index, "failed"))
                ),
                zip(ranges, parts, strict=True),
            )
        )
    manifest = runtime.manifest
    scorer = Scorer(runtime, validator, job.format, job.id_column)
    scored = Assembler(s3, job.bucket, keys.scored, CONTENT_TYPES[job.format], part_bytes)
    errors = Assembler(s3, job.bucket, keys.errors, "application/x-ndjson", part_bytes)
    rows = {"read": 0, "scored": 0, "rejected": 0}
    lines = {"total": 0, "header": 0, "blank": 0, "scored": 0, "rejected": 0}
    by_code: dict[str, int] = {}
    failed: list[int] = []
    retried = 0
    try:
        if job.format == "csv":  # the header the single path writes, even with no row scored
            header = _HeaderBuffer()
            scorer.finish_csv_header(job.carry_columns, header)  # type: ignore[arg-type]
            scored.add_bytes(header.data)
        for rng, part, note in zip(ranges, parts, notes, strict=True):
            if part is None:
                failed.append(rng.index)
                why = _why(rng, note)
                errors.add_bytes(_failed_range_lines(rng, why))
                rows["read"] += rng.rows
                rows["rejected"] += rng.rows
                by_code["range_failed"] = by_code.get("range_failed", 0) + rng.rows
                lines["total"] += rng.lines
                lines["header"] += rng.header_lines
                lines["blank"] += rng.blank
                lines["rejected"] += rng.lines - rng.header_lines - rng.blank
                continue
            retried += 1 if part.get("attempt") else 0
            skip = int(part["scored_header_bytes"])
            scored.add_object(job.part(rng.index, "scored"), skip, int(part["scored_bytes"]))
            errors.add_object(job.part(rng.index, "errors"), 0, int(part["errors_bytes"]))
            for name in rows:
                rows[name] += part["rows"][name]
            for name in lines:
                lines[name] += part["lines"][name]
            for code, n in part["rejected_by_code"].items():
                by_code[code] = by_code.get(code, 0) + n
            for name, bins in part["drift"]["features"].items():
                _add(scorer.feature_drift[name], bins)
            _add(scorer.output_drift, part["drift"]["output"])
        accounted = lines["header"] + lines["blank"] + lines["scored"] + lines["rejected"]
        planned = ranges[-1].last_line if ranges else 0
        if (
            accounted != lines["total"]
            or lines["total"] != planned
            or rows["read"] != rows["scored"] + rows["rejected"]
        ):
            raise FileError(
                "accounting_mismatch",
                f"the parts hold {lines['total']} lines ({accounted} accounted for) of the {planned} "
                "planned: please report this file",
            )
        drift = scorer.drift()
        scored.close()
        errors.close()
    except BaseException:
        scored.abort()
        errors.abort()
        raise
    summary = build_summary(
        ok=True,
        source=_source(job),
        keys=keys,
        manifest=manifest,
        rows=rows,
        lines=lines,
        rejected_by_code=by_code,
        started_at=job.started_at,
        duration_ms=_since(job),
        drift=drift,
        scored_by={
            "path": "step_functions",
            "execution": job.execution,
            "map_run": (map_run or {}).get("MapRunArn"),
            "ranges": len(ranges),
            "ranges_failed": failed,
            "ranges_retried": retried,
        },
    )
    write_summary(s3, job.bucket, keys.summary, summary)
    _clean(s3, job, ranges, parts)
    return summary


class _HeaderBuffer:
    """Collects what `Scorer.finish_csv_header` writes (it writes to a MultipartWriter)."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def _add(counts: Any, bins: dict[str, Any]) -> None:
    counts.counts += np.asarray(bins["counts"], dtype=np.int64)
    counts.missing += int(bins["missing"])


def _why(rng: Range, note: dict[str, Any] | None) -> str:
    reason = f"{note['error']}" if note else "no part was written"
    return (
        f"range {rng.index} (lines {rng.first_line}-{rng.last_line}, bytes {rng.start}-{rng.end - 1}) "
        f"was not scored after its retries ({reason}); a new execution scores it again (docs/batch.md)"
    )


def _since(job: Job) -> float:
    return round(datetime.now(UTC).timestamp() * 1000.0 - job.started_epoch_ms, 1)


def _clean(s3: MergeClient, job: Job, ranges: list[Range], parts: list[dict[str, Any] | None]) -> None:
    """Delete the parts' row data once the outputs hold it (the small JSON files stay, and the
    work prefix's lifecycle rule expires everything)."""
    keys = [
        job.part(r.index, kind)
        for r, p in zip(ranges, parts, strict=True)
        if p is not None
        for kind in ("scored", "errors")
    ]
    for i in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
        try:
            s3.delete_objects(
                Bucket=job.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
            )
        except Exception as exc:
            log.warning("could not delete merged parts: %s", type(exc).__name__)
            return


def report_failure(
    s3: S3Client,
    runtime: ModelRuntime,
    config: BatchConfig,
    *,
    obj: dict[str, Any],
    plan: dict[str, Any] | None,
    failure: dict[str, Any],
    execution: str,
) -> dict[str, Any]:
    """A run that failed (the planner crashed, more ranges failed than tolerated, the merge
    failed after its retries): a failed summary.json saying why. Never over a succeeded one."""
    manifest = runtime.manifest
    job = Job.from_dict(plan["job"]) if plan and plan.get("job") else None
    bucket, key = str(obj["bucket"]), str(obj["key"])
    etag = job.etag if job else (_etag(obj.get("etag")) or "unknown")
    if _already_scored(s3, bucket, _summary_key(config, key, etag, manifest), etag, manifest):
        return {"status": "skipped", "reason": "a succeeded summary exists"}
    try:
        fmt = job.format if job else detect_format(key)
    except FileError:
        fmt = None
    keys = output_keys(config, key, etag, manifest, fmt)
    error = str(failure.get("Error") or "unknown")
    code = "too_many_range_failures" if error == "States.ExceedToleratedFailureThreshold" else "run_failed"
    message = f"{error}: {str(failure.get('Cause') or '')[:1000]}"
    ranges: dict[str, Any] = {}
    if job is not None:
        done = failed_ranges = 0
        for rng in read_ranges(s3, job):
            if read_json(s3, job.bucket, job.part(rng.index, "summary")) is not None:
                done += 1
            elif read_json(s3, job.bucket, job.part(rng.index, "failed")) is not None:
                failed_ranges += 1
        ranges = {"ranges": job.ranges, "ranges_scored": done, "ranges_failed": failed_ranges}
    summary = failed_summary(
        {
            "bucket": bucket,
            "key": key,
            "version_id": job.version_id if job else obj.get("version_id"),
            "etag": etag,
            "bytes": job.size if job else int(obj.get("size") or 0),
            "format": fmt,
        },
        keys,
        manifest,
        code,
        message,
        started_at=job.started_at if job else datetime.now(UTC).isoformat(timespec="seconds"),
        duration_ms=_since(job) if job else 0.0,
        scored_by={"path": "step_functions", "execution": execution, **ranges},
    )
    write_summary(s3, bucket, keys.summary, summary)
    return {"status": "failed", "summary": keys.summary, "code": code}


__all__ = ["Assembler", "MergeClient", "merge_run", "read_ranges", "report_failure"]
