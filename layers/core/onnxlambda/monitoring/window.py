"""Reading captured records for a time window, and joining feedback with predictions.

Firehose writes objects under `<prefix>YYYY/MM/DD/HH/` by *arrival* hour, each holding JSON lines
(gzip or plain). A record belongs to a window by its own `ts`, so the reader lists every hour
prefix that can hold records of the window (records arrive after they are written, never before)
and filters by `ts`. The S3 client is passed in (moto mocks it in tests).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from onnxlambda.monitoring.capture import FEEDBACK, INFERENCE

Record = dict[str, Any]


class S3Reader(Protocol):
    """The two calls the monitor makes (a boto3 S3 client satisfies it)."""

    def get_paginator(self, operation_name: str) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class Records:
    inferences: list[Record] = field(default_factory=list)
    feedback: list[Record] = field(default_factory=list)
    unreadable_lines: int = 0

    def add_lines(self, data: bytes) -> None:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.unreadable_lines += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("ts"), int):
                self.unreadable_lines += 1
            elif record.get("record_type") == INFERENCE:
                self.inferences.append(record)
            elif record.get("record_type") == FEEDBACK:
                self.feedback.append(record)


def hour_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """`<prefix>YYYY/MM/DD/HH/` for every hour from start's hour to end's hour, inclusive."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= end:
        out.append(f"{prefix}{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return out


def read_s3(s3: S3Reader, bucket: str, prefix: str, start: datetime, until: datetime) -> Records:
    """Every record that arrived between start's hour and `until` (filter by ts afterwards)."""
    records = Records()
    paginator = s3.get_paginator("list_objects_v2")
    for hour in hour_prefixes(prefix, start, until):
        for page in paginator.paginate(Bucket=bucket, Prefix=hour):
            for obj in page.get("Contents", []):
                records.add_lines(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    return records


def read_directory(directory: Path) -> Records:
    """Captured records from local files (a copy of the capture bucket, or test data)."""
    records = Records()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        records.add_lines(path.read_bytes())
    return records


def in_window(records: Iterable[Record], start: datetime, end: datetime) -> list[Record]:
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return [r for r in records if lo <= r["ts"] < hi]


def join_feedback(inferences: Iterable[Record], feedback: Iterable[Record]) -> list[tuple[Record, Any]]:
    """(captured inference, actual outcome) pairs; the latest feedback per inference id wins."""
    by_id = {r["inference_id"]: r for r in inferences if "inference_id" in r}
    actual: dict[str, tuple[int, Any]] = {}
    for f in feedback:
        key = f.get("inference_id")
        if isinstance(key, str) and key in by_id and (key not in actual or f["ts"] >= actual[key][0]):
            actual[key] = (f["ts"], f.get("actual"))
    return [(by_id[k], v) for k, (_, v) in actual.items()]


def records_in(lines: Iterator[str]) -> Records:
    records = Records()
    records.add_lines("\n".join(lines).encode())
    return records


__all__ = [
    "Record",
    "Records",
    "S3Reader",
    "hour_prefixes",
    "in_window",
    "join_feedback",
    "read_directory",
    "read_s3",
]
