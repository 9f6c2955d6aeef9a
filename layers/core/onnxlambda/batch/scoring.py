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

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from onnxlambda import settings
from onnxlambda.batch.files import CONTENT_TYPES, FileError, Format, byte_chunks, detect_format, text_lines
from onnxlambda.batch.readers import TEXT_CELL_CHARS, Chunk, CsvReader, LineCounts, RejectedRow, reader_for
from onnxlambda.batch.writer import MIN_PART_BYTES, MultipartWriter, S3Client, background
from onnxlambda.codecs import fastjson
from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from onnxlambda.contract.redaction import REDACTED, Redactor
from onnxlambda.monitoring.drift import BinnedCounts, min_count
from onnxlambda.serving.runtime import ModelRuntime, Prediction
from onnxlambda.serving.validation import PartialBatch, Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    input_prefix: str = "incoming/"
    output_prefix: str = "scored/"
    bucket: str | None = None  # when set, events for any other bucket are refused
    chunk_rows: int = 10_000
    part_bytes: int = 8 * 1024 * 1024
    # Stop this long before the Lambda timeout: enough to abort uploads and write the report.
    time_margin_ms: int = 20_000
    id_column: str | None = "id"
    # Refuse larger objects up front (0: no limit): set it from the measured throughput so a
    # file that cannot finish in one invocation fails in a second, not after 15 minutes.
    max_bytes: int = 0
    # The longest CSV cell that may hold a line break (id, pass-through text): beyond it, a record
    # spanning lines is an unbalanced quote (onnxlambda.batch.readers).
    max_text_cell_chars: int = TEXT_CELL_CHARS

    def __post_init__(self) -> None:
        if not self.input_prefix or not self.output_prefix:
            raise ValueError("input and output prefixes must be non-empty")
        if self.input_prefix.startswith(self.output_prefix) or self.output_prefix.startswith(
            self.input_prefix
        ):
            # Output written under the input prefix would trigger the function again, forever.
            raise ValueError(
                f"input prefix {self.input_prefix!r} and output prefix {self.output_prefix!r} overlap"
            )
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")
        if self.part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        if self.max_text_cell_chars < 1:
            raise ValueError("max_text_cell_chars must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchConfig:
        """From the ONNXLAMBDA_BATCH_* variables (onnxlambda.settings: meanings and defaults)."""
        return cls(
            input_prefix=settings.get("ONNXLAMBDA_BATCH_INPUT_PREFIX", env),
            output_prefix=settings.get("ONNXLAMBDA_BATCH_OUTPUT_PREFIX", env),
            bucket=settings.get("ONNXLAMBDA_BATCH_BUCKET", env) or None,
            chunk_rows=settings.get("ONNXLAMBDA_BATCH_CHUNK_ROWS", env),
            part_bytes=settings.get("ONNXLAMBDA_BATCH_PART_BYTES", env),
            time_margin_ms=settings.get("ONNXLAMBDA_BATCH_TIME_MARGIN_MS", env),
            id_column=settings.get("ONNXLAMBDA_BATCH_ID_COLUMN", env) or None,
            max_bytes=settings.get("ONNXLAMBDA_BATCH_MAX_BYTES", env),
            max_text_cell_chars=settings.get("ONNXLAMBDA_BATCH_MAX_TEXT_CELL_CHARS", env),
        )


@dataclass(frozen=True, slots=True)
class OutputKeys:
    base: str
    scored: str
    errors: str
    summary: str


def output_keys(config: BatchConfig, key: str, etag: str, manifest: Manifest, fmt: str | None) -> OutputKeys:
    """Deterministic output location: same input object and model version, same keys."""
    relative = key[len(config.input_prefix) :]
    base = f"{config.output_prefix}{relative}/etag={etag}/model={manifest.name}-{manifest.version}/"
    ext = "jsonl" if fmt == "jsonl" else "csv"
    return OutputKeys(base, f"{base}scored.{ext}", f"{base}errors.jsonl", f"{base}summary.json")


def refusal(config: BatchConfig, bucket: str, key: str) -> str | None:
    """Why this object must not be processed (recursion guard), or None."""
    if config.bucket and bucket != config.bucket:
        return f"bucket {bucket!r} is not the configured batch bucket {config.bucket!r}"
    if key.startswith(config.output_prefix):
        return f"key {key!r} is under the output prefix {config.output_prefix!r}: refusing to re-score output"
    if not key.startswith(config.input_prefix):
        return f"key {key!r} is outside the input prefix {config.input_prefix!r}"
    if key.endswith("/"):
        return f"key {key!r} is a folder marker, not a file"
    return None


class _Scorer:
    """Per-file state: counters, drift accumulators and the two output writers."""

    def __init__(
        self,
        runtime: ModelRuntime,
        validator: Validator,
        fmt: Format,
        id_column: str | None,
        redactor: Redactor | None = None,
    ) -> None:
        self.runtime = runtime
        self.redactor = redactor or Redactor()
        self.manifest = runtime.manifest
        self.validator = validator
        self.fmt = fmt
        self.id_column = id_column
        self.rows_read = 0
        self.rows_scored = 0
        self.rows_rejected = 0
        self.lines_scored = 0
        self.lines_rejected = 0
        self.rejected_by_code: dict[str, int] = {}
        baselines = self.manifest.baselines
        self.feature_drift = {
            f.name: BinnedCounts(baselines.features[f.name]) for f in self.manifest.features
        }
        self.output_drift = BinnedCounts(baselines.output)
        self._csv_header: list[str] | None = None

    # -- one chunk ----------------------------------------------------------------------------

    def score(self, chunk: Chunk, scored: MultipartWriter, errors: MultipartWriter) -> None:
        self.rows_read += chunk.size + len(chunk.rejected)
        rejected = list(chunk.rejected)
        self.lines_rejected += sum(r.span for r in rejected)
        if chunk.size:
            if chunk.columns is not None:
                partial = self.validator.validate_columns(chunk.columns, chunk.size)
            else:
                assert chunk.objects is not None
                partial = self.validator.validate_partial(chunk.objects)
            for i, errs in partial.errors.items():
                row = chunk.numbers[i]
                fixed = [replace(e, row=row) for e in errs]  # chunk index -> row number in the file
                rejected.append(RejectedRow(row, fixed, chunk.raw(i), chunk.lines[i], chunk.end_line(i)))
            bad_lines = chunk.lines_of(partial.errors)
            self.lines_rejected += bad_lines
            self.lines_scored += chunk.lines_of(range(chunk.size)) - bad_lines
            if partial.rows:
                prediction = self.runtime.run(partial.columns, partial.rows)
                self._count_drift(partial, prediction)
                scored.write(self._render(chunk, partial, prediction))
                self.rows_scored += partial.rows
        if rejected:
            rejected.sort(key=lambda r: r.row)
            errors.write(
                "".join(json.dumps(self._error_line(r), default=str) + "\n" for r in rejected).encode("utf-8")
            )
            self.rows_rejected += len(rejected)
            for r in rejected:
                for code in {e.code for e in r.errors}:
                    self.rejected_by_code[code] = self.rejected_by_code.get(code, 0) + 1

    def _error_line(self, rejected: RejectedRow) -> dict[str, Any]:
        """One errors.jsonl line, with the configured fields' values redacted."""
        redactor = self.redactor
        if not redactor:
            return rejected.to_dict()
        safe = replace(rejected, errors=[redactor.detail(e) for e in rejected.errors])
        line = safe.to_dict()
        raw = rejected.input
        if isinstance(raw, dict):
            line["input"] = redactor.row(raw)
        elif raw is not None:
            line["input"] = REDACTED  # cells or text not mapped to fields: any could be sensitive
        return line

    def _count_drift(self, partial: PartialBatch, prediction: Prediction) -> None:
        for f in self.manifest.features:
            self.feature_drift[f.name].add(partial.columns[f.name])
        if prediction.labels is not None:
            self.output_drift.add(prediction.labels)
        elif prediction.values is not None:
            self.output_drift.add(prediction.values)

    # -- output rows --------------------------------------------------------------------------

    def _prediction_columns(self, prediction: Prediction) -> tuple[list[str], list[list[Any]]]:
        """Column names and values (probabilities rounded to 6 decimals)."""
        out = self.manifest.output
        if isinstance(out, ClassificationOutput):
            assert prediction.labels is not None
            names, cols = ["label"], [list(prediction.labels)]
            if prediction.probabilities is not None:
                probs = np.round(prediction.probabilities.astype(np.float64), 6)
                names += [f"probability_{label}" for label in out.labels]
                cols += [probs[:, j].tolist() for j in range(probs.shape[1])]
            return names, cols
        assert prediction.values is not None
        return [out.name], [prediction.values.tolist()]

    def _render(self, chunk: Chunk, partial: PartialBatch, prediction: Prediction) -> bytes:
        good = partial.good.tolist()
        numbers = [chunk.numbers[i] for i in good] if partial.errors else list(chunk.numbers)
        carry = [chunk.carry[i] for i in good] if chunk.carry is not None else None
        if self.fmt == "csv":
            return self._render_csv(numbers, carry, prediction)
        names, pred_cols = self._prediction_columns(prediction)
        pred_rows = list(zip(*pred_cols, strict=True))
        lines = []
        for j, n in enumerate(numbers):
            obj: dict[str, Any] = {"row": n}
            if carry is not None:
                obj.update(carry[j])
            obj.update(self._prediction_object(names, pred_rows[j]))
            lines.append(fastjson.dumps(obj))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _prediction_object(self, names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
        out = self.manifest.output
        if isinstance(out, ClassificationOutput) and len(names) > 1:
            return {"label": values[0], "probabilities": dict(zip(out.labels, values[1:], strict=True))}
        return dict(zip(names, values, strict=True))

    def _prediction_text(self, prediction: Prediction) -> tuple[list[str], list[list[str]]]:
        """CSV header names and text columns of the prediction. The probabilities of a row come
        as one text cell group ("0.123456,0.000012,0.876532"), formatted in numpy: formatting
        each probability in Python was the largest cost of a chunk after parsing."""
        out = self.manifest.output
        if isinstance(out, ClassificationOutput):
            assert prediction.labels is not None
            labels = list(prediction.labels)
            # labels are few distinct strings: checked once each, quoted only if one must be
            quote = any(_csv_field(v) != v for v in set(labels))
            cols = [[_csv_field(v) for v in labels] if quote else labels]
            names = ["label"]
            if prediction.probabilities is not None:
                names += [f"probability_{label}" for label in out.labels]
                cols.append(_fixed6(prediction.probabilities))
            return names, cols
        assert prediction.values is not None
        return [out.name], [list(map(repr, prediction.values.tolist()))]

    def _render_csv(
        self, numbers: list[int], carry: list[dict[str, Any]] | None, prediction: Prediction
    ) -> bytes:
        """CSV lines joined column-wise; only carried values and labels may need quoting."""
        header = ""
        names, pred_cols = self._prediction_text(prediction)
        carry_names = list(carry[0]) if carry else []
        if self._csv_header is None:
            self._csv_header = ["row", *carry_names, *names]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(self._csv_header)
            header = buffer.getvalue()
        columns: list[list[str]] = [list(map(str, numbers))]
        if carry:
            columns += [[_csv_field(str(c.get(k, ""))) for c in carry] for k in carry_names]
        columns += pred_cols
        return (header + "\n".join(map(",".join, zip(*columns, strict=True))) + "\n").encode("utf-8")

    def finish_csv_header(self, carry_names: list[str], scored: MultipartWriter) -> None:
        """A CSV with no scored row still gets its header, so consumers can always parse it."""
        if self._csv_header is None:
            names, _ = self._prediction_text(_empty_prediction(self.manifest))
            self._csv_header = ["row", *carry_names, *names]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(self._csv_header)
            scored.write(buffer.getvalue().encode("utf-8"))

    def drift(self) -> dict[str, Any]:
        def one(counts: BinnedCounts) -> dict[str, Any]:
            stat = counts.stat()
            bins = len(counts.expected())
            # counts: this file's per-bin counts, so `onnxlambda_cli.drift_report --summary` can plot
            # them and the monitor's detectors can judge them (same statistics, onnxlambda.monitoring.drift).
            return {
                **stat.to_dict(),
                "bins": bins,
                "counts": counts.current(),
                "enough_data": stat.count >= min_count(bins),
            }

        return {
            "features": {name: one(c) for name, c in self.feature_drift.items()},
            "output": one(self.output_drift),
            "method": "PSI (natural log) and Jensen-Shannon distance (base 2) over the manifest's baseline "
            "bins, shares smoothed with 0.5 per bin (onnxlambda.monitoring.drift, as the monitor); "
            "counts per bin "
            "(numeric) or per category (new ones under __unseen__); enough_data = at least 20 values per bin",
        }


def _empty_prediction(manifest: Manifest) -> Prediction:
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        probs = np.zeros((0, len(out.labels)), dtype=np.float32) if out.probability_tensor else None
        return Prediction(labels=[], probabilities=probs, values=None)
    return Prediction(labels=None, probabilities=None, values=np.zeros(0))


def _fixed6(probabilities: npt.NDArray[Any]) -> list[str]:
    """Per row, its probabilities with 6 decimals ("%.6f", the values of np.round(p, 6)) joined
    by commas. Digits are computed on the whole [N, C] array and the text of a row is made once,
    instead of one Python format call per probability."""
    k = np.rint(probabilities.astype(np.float64) * 1e6)
    n, c = k.shape
    if not n or not c or not (np.isfinite(k).all() and k.min() >= 0 and k.max() < 10_000_000):
        return [",".join(f"{v:.6f}" for v in row) for row in probabilities.astype(np.float64).tolist()]
    rest = k.astype(np.int64)
    text = np.empty((n, c, 9), dtype=np.uint8)  # "d.dddddd," per probability
    for pos in range(7, 1, -1):
        rest, digit = np.divmod(rest, 10)
        text[:, :, pos] = digit + 48
    text[:, :, 1] = ord(".")
    text[:, :, 0] = rest + 48
    text[:, :, 8] = ord(",")
    width = 9 * c - 1  # the row's last comma dropped
    cells = np.ascontiguousarray(text.reshape(n, 9 * c)[:, :width])
    strings: list[str] = cells.view(f"S{width}").ravel().astype(f"U{width}").tolist()
    return strings


def _csv_field(value: str) -> str:
    """Quote a CSV field the way the csv module's default dialect does when it must."""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _model_ref(manifest: Manifest) -> dict[str, str]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "sha256": manifest.sha256,
        "function_version": settings.get("AWS_LAMBDA_FUNCTION_VERSION"),
    }


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
    model = _model_ref(manifest)
    reason = refusal(config, bucket, key)
    if reason is not None:
        log.warning("object refused: %s", reason)
        return {
            "status": "refused",
            "reason": reason,
            "input": {"bucket": bucket, "key": key},
            "model": model,
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
    scorer = _Scorer(runtime, validator, fmt or "csv", config.id_column, redactor)
    try:
        writers, counts, failure = _score_body(
            s3, obj["Body"], bucket, keys, fmt, failure, scorer, config, remaining_ms, gate
        )
        if failure is not None:
            _abort(*writers)
            gate.verify()  # never overwrite an earlier success with a failure of the same bytes
    except _AlreadyScored as done:
        log.info("object already scored: %s", keys.summary)
        return {**done.summary, "status": "skipped", "reason": f"already scored: {keys.summary}"}
    ok = failure is None
    closing = _complete(*writers) if ok else None
    drift = scorer.drift() if ok else None  # computed while the two files complete
    _wait(closing, writers)
    summary: dict[str, Any] = {
        "status": "succeeded" if ok else "failed",
        "input": source,
        "output": {
            "prefix": keys.base,
            "scored": keys.scored if ok else None,
            "errors": keys.errors if ok else None,
            "summary": keys.summary,
        },
        "model": model,
        "rows": {"read": scorer.rows_read, "scored": scorer.rows_scored, "rejected": scorer.rows_rejected},
        "lines": {
            "total": counts.total,
            "header": counts.header,
            "blank": counts.blank,
            "scored": scorer.lines_scored,
            "rejected": scorer.lines_rejected,
        },
        "rejected_by_code": dict(sorted(scorer.rejected_by_code.items())),
        "started_at": started_at,
        "duration_ms": round((time.perf_counter() - started) * 1000.0, 1),
        "drift": drift,
        # Which path scored it; the Step Functions path writes the same document with its own
        # (onnxlambda.batch.summary).
        "scored_by": {"path": "single_invocation"},
    }
    if failure is not None:
        summary["error"] = {"code": failure.code, "message": failure.message}
    s3.put_object(
        Bucket=bucket,
        Key=keys.summary,
        Body=(json.dumps(summary, indent=2) + "\n").encode("utf-8"),
        ContentType="application/json",
    )
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
    scorer: _Scorer,
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
        _abort(scored, errors)
        raise
    finally:
        body.close()
    return (scored, errors), counts, failure


def _complete(*writers: MultipartWriter) -> list[Future[None]]:
    """Start completing the uploads side by side (each its own S3 round trip); see `_wait`."""
    return [background().submit(w.close) for w in writers]


def _wait(closing: list[Future[None]] | None, writers: tuple[MultipartWriter, ...]) -> None:
    """Wait for every completion; if one failed, discard what is left and raise its error. The
    summary is written only after this returns: see the completion contract above."""
    error: BaseException | None = None
    for future in closing or ():
        error = error or future.exception()
    if error is not None:
        _abort(*writers)  # a no-op for a writer already completed
        raise error


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
    rather than a 403/404 to tell apart; read only when it exists."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=summary_key, MaxKeys=1)
    if not any(o.get("Key") == summary_key for o in listing.get("Contents") or ()):
        return None
    body = s3.get_object(Bucket=bucket, Key=summary_key)["Body"]
    try:
        previous: dict[str, Any] = json.loads(body.read())
    except ValueError:
        return None  # unreadable: score again, which rewrites it
    finally:
        body.close()
    same = (
        previous.get("status") == "succeeded"
        and (previous.get("input") or {}).get("etag") == etag
        and (previous.get("model") or {}).get("sha256") == manifest.sha256
    )
    return previous if same else None


def _abort(*writers: MultipartWriter) -> None:
    """Discard the writers' parts on the way out of a failure, without masking it: an abort that
    fails too (S3 still unreachable) is logged, and the bucket's lifecycle rule removes the parts."""
    for writer in writers:
        try:
            writer.abort()
        except Exception as exc:
            log.warning("could not abort the upload of %s: %s", writer.key, type(exc).__name__)


def _stream(  # noqa: PLR0917 - one call site; the pieces of one file's run
    body: Any,
    fmt: Format,
    scorer: _Scorer,
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


__all__ = ["GONE", "BatchConfig", "OutputKeys", "output_keys", "refusal", "s3_error_code", "score_object"]
