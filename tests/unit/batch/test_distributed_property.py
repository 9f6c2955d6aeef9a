"""Property: cut into ranges, scored range by range and merged, a file gives the single path's output.

The damaged files of test_accounting_property.py (quotes opened and never closed, quoted line
breaks, cut lines, wrong field counts, blank and whitespace lines, lone CRs, CRLF, no final line
end, bytes that are not UTF-8) are scored by the single-invocation path and by the distributed
path's steps (plan, every range, merge) with tiny ranges and chunks, so that cuts fall everywhere:
right after an unbalanced quote, inside a stretch the csv module reads through, between the lines
of a quoted line break. Then, byte for byte:

- the scored file and the errors file are the same bytes;
- the summary is the same document but for when, where and which path (`twopaths.comparable`);
- a file the single path refuses is refused by the planner with the same code and message.

CI runs half of BATCH_PROPERTY_EXAMPLES (default 300) examples; `make property` runs thousands.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.unit.batch.test_accounting_property import EXAMPLES, RUNTIME, VALIDATOR, damaged_files
from tests.unit.batch.twopaths import comparable, distributed, single

BUCKET = "onnxlambda-distributed-property"
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@given(
    damaged_files(),
    st.sampled_from([1, 1, 2, 3, 1000]),
    st.sampled_from([1, 10, 60, 10**6]),
)
@settings(
    max_examples=max(EXAMPLES // 2, 50),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_ranges_merged_are_the_single_path_byte_for_byte(
    s3: Any, file: tuple[str, str, bytes], chunk_rows: int, range_bytes: int
) -> None:
    fmt, _, data = file
    # GIVEN a damaged file, uploaded once
    key = f"incoming/{next(_COUNTER)}.{fmt}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    knobs: dict[str, Any] = {"chunk_rows": chunk_rows, "max_text_cell_chars": 40}
    # WHEN the single path scores it, and the distributed path cuts it into ranges of about
    # `range_bytes`, scores each alone and merges them
    one = single(s3, RUNTIME, VALIDATOR, BUCKET, key, **knobs)
    two = distributed(s3, RUNTIME, VALIDATOR, BUCKET, key, range_bytes=range_bytes, **knobs)
    # THEN a file refused whole is refused for the same reason, in the same words
    if one.summary["status"] == "failed":
        event(f"refused: {one.summary['error']['code']}")
        assert two.summary["status"] == "failed"
        assert two.summary["error"] == one.summary["error"]
        assert two.scored is None
        return
    ranges = two.summary["scored_by"]["ranges"]
    event(f"ranges: {'1' if ranges == 1 else '2-5' if ranges <= 5 else 'more'}")
    # ... else the two files are the same bytes, and the summaries the same document
    assert two.scored == one.scored
    assert two.errors == one.errors
    assert comparable(two.summary) == comparable(one.summary)
    assert two.summary["scored_by"]["path"] == "step_functions"
    assert one.summary["scored_by"] == {"path": "single_invocation"}
