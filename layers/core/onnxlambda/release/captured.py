"""Which captured records a replay takes: newest first, bounded, in a time window, of one model.

Records come from a directory (onnxlambda.monitoring.window.read_directory) or from the capture
bucket, newest first and bounded: `read_recent_s3` stops listing and reading once it holds
enough rows. `served_by` names the model most of them were answered by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from onnxlambda.monitoring.window import Record, Records, S3Reader, hour_prefixes


def served_by(records: Sequence[Record]) -> str | None:
    """The sha256 that served most of these records (the current model, in steady state)."""
    counts = Counter(r.get("model_sha256") for r in records if isinstance(r.get("model_sha256"), str))
    return str(counts.most_common(1)[0][0]) if counts else None


def select(
    records: Sequence[Record],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_rows: int | None = None,
    model_sha256: str | None = None,
    exclude_sha256: str | None = None,
) -> list[Record]:
    """The newest `max_rows` inference records in [start, end), optionally of one model only."""
    lo = int(start.timestamp() * 1000) if start else None
    hi = int(end.timestamp() * 1000) if end else None
    picked = [
        r
        for r in records
        if isinstance(r.get("features"), dict)
        and (lo is None or r["ts"] >= lo)
        and (hi is None or r["ts"] < hi)
        and (model_sha256 is None or r.get("model_sha256") == model_sha256)
        and (exclude_sha256 is None or r.get("model_sha256") != exclude_sha256)
    ]
    picked.sort(key=lambda r: (r["ts"], str(r.get("inference_id", ""))), reverse=True)
    kept = picked if max_rows is None else picked[:max_rows]
    return list(reversed(kept))


def read_recent_s3(
    s3: S3Reader,
    bucket: str,
    prefix: str,
    start: datetime,
    end: datetime,
    *,
    max_rows: int,
    max_objects: int = 1000,
) -> tuple[Records, int]:
    """Captured records from the newest hour prefix backwards, stopping once `max_rows` inference
    records with ts in [start, end) are held or `max_objects` objects were read. Returns the
    records and the number of objects read.

    Within an hour prefix, objects are read newest first: ListObjectsV2 returns keys in UTF-8
    binary order, and Firehose names objects by delivery time, so the reverse order is newest first.
    """
    # ListObjectsV2 returns keys in UTF-8 binary (lexicographic) order, as S3's API reference says:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
    records = Records()
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    held, read = 0, 0
    paginator = s3.get_paginator("list_objects_v2")
    for hour in reversed(hour_prefixes(prefix, start, end)):
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=hour)
            for obj in page.get("Contents", [])
        ]
        for key in reversed(keys):
            before = len(records.inferences)
            records.add_lines(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            held += sum(1 for r in records.inferences[before:] if lo <= r["ts"] < hi)
            read += 1
            if held >= max_rows or read >= max_objects:
                return records, read
    return records, read


__all__ = ["read_recent_s3", "select", "served_by"]
