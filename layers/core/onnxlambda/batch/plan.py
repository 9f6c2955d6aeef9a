"""Plan a large object: one pass over its bytes, cut into ranges at record boundaries, with counts.

Over ~400 lines on purpose: the one pass, its cut rules and the counts each range is checked
against are one argument, read best together.

Why the planner reads the file itself instead of letting Distributed Map's ItemReader parse it
(docs/batch.md "Why byte ranges"): ItemReader turns a CSV row with too many fields into a
shorter item and a row with too few into one padded with empty strings, silently
(docs.aws.amazon.com/step-functions/latest/dg/example-csv-parse-dist-map.html), makes a
whitespace-only line an item, caps the object at 10 GB and each child input at 256 KiB, and copies
every row into child inputs and ResultWriter files, around ONNXLAMBDA_REDACT_FIELDS. Reading the file once
here with the single path's own reader keeps every rule of docs/batch.md (wrong field counts,
BOM, CRLF, blank lines, quoted line breaks, unbalanced quotes, the numbers rows and lines get)
exactly, and Step Functions only ever sees byte offsets and counts.

What a cut must be, and how it is found:
- a record boundary: every range's first line starts a record in the whole-file reading. CSV
  records can span lines (quoted line breaks) and an unbalanced quote is only found by reading
  on, so CSV boundaries come from the single path's CsvReader itself, run over the whole file
  without converting cells (`cells=False`). JSON Lines records are lines: any line boundary is one.
- a chunk boundary: ranges start at rows 1, 1 + k * chunk_rows, ... So each range is read in the
  very chunks the single path reads it in, the model sees the same batches, and the scored text
  is the same bytes (no batch-size-dependent float rounding can differ).
- near a byte target: the first chunk boundary at or after `range_bytes` past the previous cut.

File-level failures (not UTF-8, NUL bytes, binary formats, no header, missing columns, empty)
are found here, by the same code with the same messages as the single path, before anything is
scored.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from onnxlambda.batch.config import BatchConfig, output_keys, refusal
from onnxlambda.batch.files import BLANK_CHARS, READ_BYTES, FileError, Format, detect_format, text_blocks
from onnxlambda.batch.job import MAX_RANGES, DistributedConfig, Job, Range, work_base
from onnxlambda.batch.readers import CsvReader
from onnxlambda.batch.scorer import model_ref
from onnxlambda.batch.scoring import _already_scored, _etag, _open, _summary_key
from onnxlambda.batch.summary import failed_summary, write_summary
from onnxlambda.batch.writer import S3Client
from onnxlambda.contract.manifest import Manifest

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class _Block:
    """Complete lines decoded from the object, numbered from `first_line`; the first starts at
    byte `first_byte` (after the BOM, for the first block of a file that has one)."""

    first_line: int
    first_byte: int
    lines: list[str]
    nbytes: int

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1

    @property
    def end_byte(self) -> int:
        return self.first_byte + self.nbytes

    def offset(self, line: int) -> int:
        """Byte offset of `line` (in this block)."""
        before = self.lines[: line - self.first_line]
        return self.first_byte + len("".join(before).encode("utf-8"))


@dataclass(slots=True)
class _Stream:
    """text_blocks over the object's bytes (the single path's decoding, and its errors), each
    block with its first line number and byte offset."""

    chunks: Iterable[bytes]
    deadline: Callable[[int], None]
    head: bytes = b""
    bytes_read: int = 0

    def _watched(self) -> Iterator[bytes]:
        for data in self.chunks:
            if len(self.head) < len(BOM):
                self.head += data[: len(BOM) - len(self.head)]
            self.bytes_read += len(data)
            self.deadline(self.bytes_read)
            yield data

    def blocks(self) -> Iterator[_Block]:
        line, offset = 1, -1
        for lines in text_blocks(self._watched()):
            if offset < 0:
                offset = len(BOM) if self.head == BOM else 0
            nbytes = len("".join(lines).encode("utf-8"))
            yield _Block(line, offset, lines, nbytes)
            line += len(lines)
            offset += nbytes


@dataclass(slots=True)
class _Ranges:
    """Ranges being closed one after another."""

    range_bytes: int
    size: int
    done: list[Range] = field(default_factory=list)
    start: int = 0
    first_line: int = 1
    rows_before: int = 0
    rows: int = 0
    covered: int = 0  # lines inside this range's rows
    header_lines: int = 0

    @property
    def target(self) -> int:
        return self.start + self.range_bytes

    def cut(self, byte: int, line: int, rows_before: int) -> None:
        """Close the current range before `line` (at `byte`); the next one starts there."""
        self._close(end=byte, last_line=line - 1)
        self.start, self.first_line, self.rows_before = byte, line, rows_before
        self.rows = self.covered = self.header_lines = 0

    def finish(self, total_lines: int) -> list[Range]:
        self._close(end=self.size, last_line=total_lines)
        return self.done

    def _close(self, end: int, last_line: int) -> None:
        lines = last_line - self.first_line + 1
        blank = lines - self.header_lines - self.covered
        if blank < 0:
            raise FileError("accounting_mismatch", "planning: a range holds more row lines than lines")
        self.done.append(
            Range(
                index=len(self.done),
                start=self.start,
                end=end,
                first_line=self.first_line,
                last_line=last_line,
                rows_before=self.rows_before,
                rows=self.rows,
                blank=blank,
                header_lines=self.header_lines,
            )
        )


@dataclass(frozen=True, slots=True)
class Plan:
    format: Format
    ranges: list[Range]
    header_start: int
    header_end: int
    carry_columns: list[str]
    lines: int
    rows: int
    bytes_read: int


def plan_bytes(
    chunks: Iterable[bytes],
    fmt: Format,
    manifest: Manifest,
    *,
    size: int,
    chunk_rows: int,
    id_column: str | None,
    max_text_cell_chars: int,
    range_bytes: int,
    deadline: Callable[[int], None] = lambda _: None,
) -> Plan:
    """Cut the object whose bytes `chunks` yields (`size` of them) into ranges.

    `deadline(bytes_read)` is called as the bytes are read; it raises to stop planning."""
    range_bytes = max(range_bytes, -(-size // MAX_RANGES))
    stream = _Stream(chunks, deadline)
    if fmt == "csv":
        return _plan_csv(stream, manifest, size, chunk_rows, id_column, max_text_cell_chars, range_bytes)
    return _plan_jsonl(stream, size, chunk_rows, range_bytes)


def _plan_csv(  # noqa: PLR0917 - the pieces of one plan
    stream: _Stream,
    manifest: Manifest,
    size: int,
    chunk_rows: int,
    id_column: str | None,
    max_text_cell_chars: int,
    range_bytes: int,
) -> Plan:
    reader = CsvReader(
        manifest,
        chunk_rows=chunk_rows,
        id_column=id_column,
        max_text_cell_chars=max_text_cell_chars,
        cells=False,
    )
    kept: deque[_Block] = deque()

    def lines() -> Iterator[str]:
        for block in stream.blocks():
            kept.append(block)
            yield from block.lines

    def offset(line: int) -> int:
        while kept and kept[0].last_line < line:
            kept.popleft()  # no later cut can fall in it
        return kept[0].offset(line)

    ranges = _Ranges(range_bytes, size)
    header: tuple[int, int] | None = None
    for chunk in reader.chunks(lines()):
        if header is None:
            header = _header_span(reader.header_line, kept)
            ranges.header_lines = 1
        first_row, first_line = _first_row(chunk.numbers, chunk.lines, chunk.rejected)
        if first_row > 1:
            at = offset(first_line)
            if at >= ranges.target:
                ranges.cut(at, first_line, first_row - 1)
        ranges.rows += chunk.size + len(chunk.rejected)
        ranges.covered += chunk.lines_of(range(chunk.size)) + sum(r.span for r in chunk.rejected)
    if header is None:  # a header and no row
        header = _header_span(reader.header_line, kept)
        ranges.header_lines = 1
    done = ranges.finish(reader.counts.total)
    return Plan(
        "csv",
        done,
        header[0],
        header[1],
        list(reader.carry_columns),
        reader.counts.total,
        done[-1].rows_before + done[-1].rows,
        stream.bytes_read,
    )


def _header_span(line: int, kept: deque[_Block]) -> tuple[int, int]:
    """Bytes of the header line (from byte 0 when it is line 1, so that a BOM goes with it)."""
    block = next(b for b in kept if b.first_line <= line <= b.last_line)
    start = 0 if line == 1 else block.offset(line)
    end = block.offset(line) + len(block.lines[line - block.first_line].encode("utf-8"))
    return start, end


def _first_row(numbers: list[int], lines: list[int], rejected: list[Any]) -> tuple[int, int]:
    """The first row of a chunk (scored or rejected) and the line it starts on."""
    candidates = []
    if numbers:
        candidates.append((numbers[0], lines[0]))
    if rejected:
        candidates.append((rejected[0].row, rejected[0].line or 0))
    return min(candidates)


_MAYBE_BLANK = ("\n\n", "\n ", "\n\t", "\n\r")


def _blank_count(lines: list[str]) -> int:
    """Blank lines (nothing but JSON whitespace: files.BLANK_CHARS), as JsonLinesReader skips
    them. A blank line other than the first follows a "\\n" with one of these, so most blocks are
    answered by a few substring searches."""
    text = "".join(lines)
    if lines and lines[0].strip(BLANK_CHARS) and not any(s in text for s in _MAYBE_BLANK):
        return 0
    return sum(1 for line in lines if not line.strip(BLANK_CHARS))


def _plan_jsonl(stream: _Stream, size: int, chunk_rows: int, range_bytes: int) -> Plan:
    """JSON Lines: every line is one record, a row unless blank; cut before a row numbered
    1 + k * chunk_rows once the byte target is passed."""
    ranges = _Ranges(range_bytes, size)
    rows = 0
    total = 0
    for block in stream.blocks():
        total = block.last_line
        if block.end_byte <= ranges.target:  # no line of it starts at the target or after
            n = len(block.lines) - _blank_count(block.lines)
            rows += n
            ranges.rows += n
            ranges.covered += n
            continue
        offset = block.first_byte
        for i, line in enumerate(block.lines):
            if line.strip(BLANK_CHARS):
                if rows and rows % chunk_rows == 0 and offset >= ranges.target:
                    ranges.cut(offset, block.first_line + i, rows)
                rows += 1
                ranges.rows += 1
                ranges.covered += 1
            offset += len(line.encode("utf-8"))
    if not rows:
        raise FileError("empty", "the file has no content")
    done = ranges.finish(total)
    return Plan("jsonl", done, 0, 0, [], total, rows, stream.bytes_read)


# -- S3 --------------------------------------------------------------------------------------------


def prefetched(body: Any, size: int = READ_BYTES, depth: int = 8) -> Iterator[bytes]:
    """The body's bytes in pieces, read ahead by a thread: S3 sends while the planner decodes."""
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set():
                data = body.read(size)
                if not data:
                    break
                pieces.put(data)
        except BaseException as exc:
            pieces.put(exc)
            return
        pieces.put(None)

    thread = threading.Thread(target=pump, name="plan-read", daemon=True)
    thread.start()
    try:
        while True:
            item = pieces.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a pump waiting on a full queue
            try:
                pieces.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def plan_object(  # noqa: PLR0911 - one return per outcome of the Plan step
    s3: S3Client,
    manifest: Manifest,
    config: BatchConfig,
    distributed: DistributedConfig,
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str | None,
    execution: str,
    function: str,
    remaining_ms: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """The Plan step: refuse, skip, fail (with the single path's failed summary) or plan.

    Returns what the state machine's Choice and Map read: status, and when "planned" the job,
    the manifest key, the ResultWriter prefix, MaxConcurrency and ToleratedFailurePercentage."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    model = model_ref(manifest)
    reason = refusal(config, bucket, key)  # the recursion guard holds for executions too
    if reason is not None:
        log.warning("object refused: %s", reason)
        return {"status": "refused", "reason": reason}
    said = _etag(etag)
    if said and _already_scored(s3, bucket, _summary_key(config, key, said, manifest), said, manifest):
        return {"status": "skipped", "summary": _summary_key(config, key, said, manifest)}
    fmt: Format | None = None
    try:
        fmt = detect_format(key)
    except FileError as exc:
        return _failed(s3, config, manifest, bucket, key, version_id, said, 0, None, exc, started_at, started)
    obj, gone = _open(s3, bucket, key, version_id, etag)
    etag = _etag(obj.get("ETag")) or "unknown"
    size = int(obj.get("ContentLength") or 0)
    version_id = obj.get("VersionId") or version_id
    if gone is not None:
        obj["Body"].close()
        return _failed(
            s3, config, manifest, bucket, key, version_id, etag, 0, None, gone, started_at, started
        )
    if etag != said and _already_scored(
        s3, bucket, _summary_key(config, key, etag, manifest), etag, manifest
    ):
        obj["Body"].close()
        return {"status": "skipped", "summary": _summary_key(config, key, etag, manifest)}

    def deadline(read: int) -> None:
        left = remaining_ms() if remaining_ms is not None else None
        if left is not None and left < config.time_margin_ms:
            raise FileError(
                "time_budget_exceeded",
                f"planning stopped with {left} ms left after {read} of {size} bytes; "
                "the planner reads the whole object once (docs/batch.md): split it into smaller objects",
            )

    try:
        plan = plan_bytes(
            prefetched(obj["Body"]),
            fmt,
            manifest,
            size=size,
            chunk_rows=config.chunk_rows,
            id_column=config.id_column,
            max_text_cell_chars=config.max_text_cell_chars,
            range_bytes=distributed.range_bytes,
            deadline=deadline,
        )
    except FileError as exc:
        return _failed(
            s3, config, manifest, bucket, key, version_id, etag, size, fmt, exc, started_at, started
        )
    finally:
        obj["Body"].close()
    keys = output_keys(config, key, etag, manifest, fmt)
    job = Job(
        bucket=bucket,
        key=key,
        version_id=version_id,
        etag=etag,
        size=size,
        format=plan.format,
        function=function,
        model_name=manifest.name,
        model_version=manifest.version,
        model_sha256=manifest.sha256,
        chunk_rows=config.chunk_rows,
        max_text_cell_chars=config.max_text_cell_chars,
        id_column=config.id_column,
        header_start=plan.header_start,
        header_end=plan.header_end,
        carry_columns=plan.carry_columns,
        ranges=len(plan.ranges),
        work=work_base(config, distributed, key=key, etag=etag, name=manifest.name, version=manifest.version),
        output_base=keys.base,
        started_at=started_at.isoformat(timespec="seconds"),
        started_epoch_ms=int(started_at.timestamp() * 1000),
        execution=execution,
    )
    s3.put_object(
        Bucket=bucket,
        Key=job.manifest_key,
        Body=json.dumps([r.to_dict() for r in plan.ranges]).encode("utf-8"),
        ContentType="application/json",
    )
    seconds = time.perf_counter() - started
    log.info(
        "planned",
        extra={"ranges": len(plan.ranges), "rows": plan.rows, "bytes": size, "seconds": round(seconds, 3)},
    )
    return {
        "status": "planned",
        "job": job.to_dict(),
        "manifest_key": job.manifest_key,
        "results_prefix": job.results_prefix,
        "max_concurrency": distributed.max_concurrency,
        "tolerated_failure_percentage": distributed.tolerated_failure_percentage,
        "ranges": len(plan.ranges),
        "rows": plan.rows,
        "lines": plan.lines,
        "plan_ms": round(seconds * 1000.0, 1),
        "model": model,
    }


def _failed(  # noqa: PLR0917 - the fields of a failed summary
    s3: S3Client,
    config: BatchConfig,
    manifest: Manifest,
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str,
    size: int,
    fmt: Format | None,
    failure: FileError,
    started_at: datetime,
    started: float,
) -> dict[str, Any]:
    """Write the failed summary the single path writes for the same file, and say so."""
    keys = output_keys(config, key, etag or "unknown", manifest, fmt)
    source = {
        "bucket": bucket,
        "key": key,
        "version_id": version_id,
        "etag": etag or "unknown",
        "bytes": size,
        "format": fmt,
    }
    summary = failed_summary(
        source,
        keys,
        manifest,
        failure.code,
        failure.message,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
        scored_by={"path": "step_functions", "step": "plan"},
    )
    write_summary(s3, bucket, keys.summary, summary)
    # the code only: a message can quote the file's first line, and this answer is execution history
    return {"status": "failed", "summary": keys.summary, "code": failure.code}


__all__ = ["Plan", "plan_bytes", "plan_object", "prefetched"]
