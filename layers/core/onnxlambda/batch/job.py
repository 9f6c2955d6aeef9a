"""The distributed path's contract: one large object, cut into byte ranges, scored range by range.

Objects at least `ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES` large are not scored by the S3-triggered function
but by a Step Functions execution (statemachines/score_large_object.asl.json):

    Plan (Lambda)        reads the whole object once, the way the single-invocation path would, and
                         writes a manifest: byte ranges cut at record boundaries, each with the row
                         and line numbers it starts at (onnxlambda.batch.plan)
    ScoreRanges (Map)    Distributed Map over that manifest (ItemReader, InputType JSON): one child
                         workflow per range, which scores it into part objects under the work
                         prefix (onnxlambda.batch.ranges)
    Merge (Lambda)       concatenates the parts in range order into the same scored file, errors
                         file and summary.json (written last) the single path writes
                         (onnxlambda.batch.merge)

Everything Step Functions carries (execution input, item values, task inputs and outputs, the
ResultWriter files, execution history) is made of the types below: keys, byte offsets, counts,
never a row. So ONNXLAMBDA_REDACT_FIELDS never has to reach Step Functions.

This module holds the types every step agrees on, and where the work objects live:

    <work prefix><input key minus input prefix>/etag=<etag>/model=<name>-<version>/
        manifest.json              the ranges (a JSON array: the Map's items)
        parts/<index>.scored.csv   a range's scored rows (with the CSV header line when not empty)
        parts/<index>.errors.jsonl a range's rejected rows
        parts/<index>.json         a range's counts and drift bin counts (written last)
        parts/<index>.failed.json  why a range failed after its retries, if it did
        results/                   the Map Run's ResultWriter output
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from onnxlambda import settings
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.files import Format

MIB = 1024 * 1024
# S3 multipart: parts of at least 5 MiB (the last may be smaller), at most 5 GiB each and 10,000
# per upload (docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). The merge copies or
# uploads at least one part per range, so ranges are capped well below that.
MAX_RANGES = 4_000


@dataclass(frozen=True, slots=True)
class DistributedConfig:
    """Settings of the distributed path (environment of the batch and the range functions)."""

    # Where the S3-triggered function starts executions; unset: every object takes the single path.
    state_machine_arn: str | None = None
    # Objects at least this large start an execution (0: never). Default from docs/batch.md
    # "Which path": the measured single-invocation throughput, 15 minutes, and a margin.
    min_bytes: int = 0
    work_prefix: str = "work/"
    # Target bytes per range (one child workflow each); cuts fall on the next chunk boundary.
    range_bytes: int = 64 * MIB
    max_concurrency: int = 20
    tolerated_failure_percentage: float = 0.0

    def __post_init__(self) -> None:
        if self.min_bytes < 0:
            raise ValueError("ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES must not be negative")
        if not self.work_prefix.endswith("/"):
            raise ValueError("ONNXLAMBDA_BATCH_WORK_PREFIX must end with '/'")
        if self.range_bytes < 1:
            raise ValueError("ONNXLAMBDA_BATCH_RANGE_BYTES must be positive")
        if self.max_concurrency < 0:
            raise ValueError("ONNXLAMBDA_BATCH_MAX_CONCURRENCY must not be negative")
        if not 0 <= self.tolerated_failure_percentage <= 100:
            raise ValueError("ONNXLAMBDA_BATCH_TOLERATED_FAILURE_PERCENTAGE must be between 0 and 100")

    def check(self, batch: BatchConfig) -> None:
        """The work prefix must overlap neither the input (it would trigger scoring) nor the output
        (a consumer listing an object's output must see the three files and nothing else)."""
        for name, prefix in (("input", batch.input_prefix), ("output", batch.output_prefix)):
            if self.work_prefix.startswith(prefix) or prefix.startswith(self.work_prefix):
                raise ValueError(f"work prefix {self.work_prefix!r} overlaps the {name} prefix {prefix!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.state_machine_arn) and self.min_bytes > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistributedConfig:
        """From the large-object ONNXLAMBDA_BATCH_* variables (onnxlambda.settings)."""
        return cls(
            state_machine_arn=settings.get("BATCH_STATE_MACHINE_ARN", env) or None,
            min_bytes=settings.get("BATCH_DISTRIBUTED_MIN_BYTES", env),
            work_prefix=settings.get("BATCH_WORK_PREFIX", env),
            range_bytes=settings.get("BATCH_RANGE_BYTES", env),
            max_concurrency=settings.get("BATCH_MAX_CONCURRENCY", env),
            tolerated_failure_percentage=settings.get("BATCH_TOLERATED_FAILURE_PERCENTAGE", env),
        )


@dataclass(frozen=True, slots=True)
class Range:
    """One Map item: bytes [start, end) of the object, holding lines first_line..last_line.

    Its records start inside it (a CSV record that starts there may end after `end`: the child
    reads on to finish it, as the whole-file reader would). Rows are numbered from
    rows_before + 1; `rows` of them start here. `blank` is the blank lines among its lines and
    `header_lines` the lines before the first row that the header took (the first range only:
    blank lines before the header, and the header)."""

    index: int
    start: int
    end: int
    first_line: int
    last_line: int
    rows_before: int
    rows: int
    blank: int
    header_lines: int = 0

    @property
    def lines(self) -> int:
        return self.last_line - self.first_line + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Range:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Job:
    """What every task of one execution needs to know (the same for all ranges)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    format: Format
    # The exact function version the planner ran on: every range and the merge run on it too,
    # so a deployment during a run cannot mix two models in one output.
    function: str
    model_name: str
    model_version: str
    model_sha256: str
    chunk_rows: int
    max_text_cell_chars: int
    id_column: str | None
    # CSV: bytes of the header line; ranges after the first read it before their own lines.
    header_start: int
    header_end: int
    carry_columns: list[str]
    ranges: int
    work: str  # the work base key (see the module docstring)
    output_base: str
    started_at: str
    started_epoch_ms: int
    execution: str

    @property
    def manifest_key(self) -> str:
        return f"{self.work}manifest.json"

    @property
    def results_prefix(self) -> str:
        return f"{self.work}results"

    @property
    def extension(self) -> str:
        return "jsonl" if self.format == "jsonl" else "csv"

    def part(self, index: int, kind: str) -> str:
        """A range's work object: kind is scored, errors, summary or failed."""
        suffix = {
            "scored": f"scored.{self.extension}",
            "errors": "errors.jsonl",
            "summary": "json",
            "failed": "failed.json",
        }[kind]
        return f"{self.work}parts/{index:06d}.{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


def work_base(
    config: BatchConfig, distributed: DistributedConfig, *, key: str, etag: str, name: str, version: str
) -> str:
    """Like the output base (scoring.output_keys), under the work prefix: stable for one object
    version and one model, so a re-run finds the ranges a failed run already scored."""
    relative = key[len(config.input_prefix) :]
    return f"{distributed.work_prefix}{relative}/etag={etag}/model={name}-{version}/"


_NAME_CHARS = re.compile(r"[^0-9A-Za-z_-]+")


def execution_name(bucket: str, key: str, etag: str, model_sha256: str) -> str:
    """A StartExecution name that is the same for the same object version and model, and only
    for them: a readable tail of the key and a digest of all four. 1-80 characters of
    [0-9A-Za-z_-] (StartExecution `name`: 1-80 characters, no whitespace, brackets, wildcards or
    special characters, and only these for CloudWatch Logs: API_StartExecution.html)."""
    digest = hashlib.sha256("\n".join((bucket, key, etag, model_sha256)).encode()).hexdigest()[:32]
    tail = _NAME_CHARS.sub("-", key.rsplit("/", 1)[-1]).strip("-")[:40] or "object"
    return f"{tail}-{digest}"


__all__ = ["MAX_RANGES", "MIB", "DistributedConfig", "Job", "Range", "execution_name", "work_base"]
