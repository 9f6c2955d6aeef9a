"""Assembling an output from parts: S3 copies what it can (UploadPartCopy of spans of at least
5 MiB), the rest is read and uploaded in parts, and the result is the concatenation, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from onnxlambda.batch.merge import Assembler
from onnxlambda.batch.writer import MIN_PART_BYTES

BUCKET = "onnxlambda-merge"
MIB = 1024 * 1024


def blob(n: int, seed: int) -> bytes:
    return bytes((seed + i * 7) % 251 for i in range(n))


@pytest.mark.parametrize(
    "spans",
    [
        [("a", 6 * MIB, 0), ("b", 100, 0), ("c", 7 * MIB, 0)],  # large, small, large
        [("a", 100, 0), ("b", 6 * MIB, 10), ("c", 3 * MIB, 0)],  # small first: the buffer fills from b
        [("a", 11 * MIB, 5 * MIB + 3)],  # a copy that must not leave a too-small remainder
        [("a", 10, 0), ("b", 20, 3)],  # everything small: one PutObject
        [("a", 0, 0)],  # nothing at all
    ],
    ids=["large-small-large", "small-then-large", "one-range-from-offset", "small", "empty"],
)
def test_the_output_is_the_concatenation_of_the_spans(s3: Any, spans: list[tuple[str, int, int]]) -> None:
    # GIVEN part objects, each to be taken from an offset (a CSV part's header is skipped so)
    expected = b"literal header\n"
    for i, (key, size, skip) in enumerate(spans):
        data = blob(size, i)
        s3.put_object(Bucket=BUCKET, Key=f"parts/{key}", Body=data)
        expected += data[skip:]
    # WHEN they are assembled after some literal bytes
    out = Assembler(s3, BUCKET, "out/scored.csv", "text/csv", part_bytes=MIN_PART_BYTES)
    out.add_bytes(b"literal header\n")
    for key, size, skip in spans:
        out.add_object(f"parts/{key}", skip, size)
    out.close()
    # THEN the output is their concatenation, and spans of 5 MiB or more were copied by S3
    assert s3.get_object(Bucket=BUCKET, Key="out/scored.csv")["Body"].read() == expected
    assert out.bytes == len(expected)
    big = sum(size - skip for _, size, skip in spans if size - skip >= 2 * MIN_PART_BYTES)
    assert out.copied_bytes >= big - MIN_PART_BYTES


def test_an_aborted_assembly_leaves_nothing(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="parts/a", Body=blob(6 * MIB, 1))
    out = Assembler(s3, BUCKET, "out/x.csv", "text/csv", part_bytes=MIN_PART_BYTES)
    out.add_object("parts/a", 0, 6 * MIB)
    out.abort()
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")["KeyCount"] == 0
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
