"""Score one object both ways, in process against moto's S3: the single-invocation path
(score_object) and the distributed path's steps run one after the other (plan, every range, merge:
what the state machine runs, without Step Functions; the state machine itself is driven in
tests/unit/batch/test_sfn_driver.py and tests/integration/test_distributed_emulated.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.job import DistributedConfig, Job
from onnxlambda.batch.merge import merge_run, read_ranges
from onnxlambda.batch.plan import plan_object
from onnxlambda.batch.ranges import score_range
from onnxlambda.batch.scoring import score_object
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

# Both paths read incoming/; each writes under its own output prefix, so the two can be compared.
SINGLE = BatchConfig(output_prefix="single/")
DISTRIBUTED = BatchConfig(output_prefix="scored/")


@dataclass(frozen=True, slots=True)
class Scored:
    summary: dict[str, Any]
    scored: bytes | None
    errors: bytes | None


def fetch(s3: Any, bucket: str, summary: dict[str, Any]) -> Scored:
    def get(key: str | None) -> bytes | None:
        return None if key is None else bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    out = summary["output"]
    return Scored(summary, get(out["scored"]), get(out["errors"]))


def single(
    s3: Any,
    runtime: ModelRuntime,
    validator: Validator,
    bucket: str,
    key: str,
    *,
    chunk_rows: int = 10_000,
    max_text_cell_chars: int = 10_000,
    redactor: Redactor | None = None,
) -> Scored:
    config = BatchConfig(
        output_prefix=SINGLE.output_prefix, chunk_rows=chunk_rows, max_text_cell_chars=max_text_cell_chars
    )
    summary = score_object(s3, runtime, validator, config, bucket=bucket, key=key, redactor=redactor)
    return fetch(s3, bucket, summary)


def distributed(
    s3: Any,
    runtime: ModelRuntime,
    validator: Validator,
    bucket: str,
    key: str,
    *,
    chunk_rows: int = 10_000,
    max_text_cell_chars: int = 10_000,
    range_bytes: int = 64 * 1024 * 1024,
    redactor: Redactor | None = None,
) -> Scored:
    """Plan, score every range (in order), merge; a failed plan returns its failed summary."""
    config = BatchConfig(
        output_prefix=DISTRIBUTED.output_prefix,
        chunk_rows=chunk_rows,
        max_text_cell_chars=max_text_cell_chars,
    )
    plan = plan_object(
        s3,
        runtime.manifest,
        config,
        DistributedConfig(range_bytes=range_bytes),
        bucket=bucket,
        key=key,
        version_id=None,
        etag=None,
        execution="in-process",
        function="in-process",
    )
    if plan["status"] != "planned":
        summary = json.loads(s3.get_object(Bucket=bucket, Key=plan["summary"])["Body"].read())
        return fetch(s3, bucket, summary)
    job = Job.from_dict(plan["job"])
    for rng in read_ranges(s3, job):
        score_range(s3, runtime, validator, job, rng, redactor=redactor)
    return fetch(s3, bucket, merge_run(s3, runtime, validator, config, job))


# Fields that say when and where, not what: they differ between any two runs.
RUN_FIELDS = {"started_at", "duration_ms", "scored_by", "output"}


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without the fields that differ between two runs of the same file."""
    out = {k: v for k, v in summary.items() if k not in RUN_FIELDS}
    out["model"] = {k: v for k, v in summary["model"].items() if k != "function_version"}
    return out
