"""Which path scores an object: the batch handler with moto's S3 and Step Functions.

Small objects are scored by the invocation, as before; objects of at least
ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES start one execution of the large-object state machine, named after
the object version and the model (StartExecution is idempotent for the same name and input while
the execution runs, and refuses the name afterwards: API_StartExecution.html; moto 5 behaves so).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, sample_rows
from functions.batch import app, environment
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.event import BatchEventError
from onnxlambda.batch.job import DistributedConfig, execution_name
from onnxlambda.serving.service import get_service
from tests.conftest import FakeLambdaContext, load_event

BUCKET = load_event("s3_put_csv")["Records"][0]["s3"]["bucket"]["name"]
MIN_BYTES = 2_000


class BatchContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="onnxlambda-large-objects",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/large-objects",
        )["stateMachineArn"]
        monkeypatch.setattr(environment, "_s3", s3)
        monkeypatch.setattr(app, "_sfn", sfn)
        monkeypatch.setattr(app, "distributed", DistributedConfig(state_machine_arn=arn, min_bytes=MIN_BYTES))
        yield s3, sfn, arn


def put(s3: Any, key: str, rows: int) -> dict[str, Any]:
    """Upload a CSV; the S3 put event record for it (size and ETag as S3 states them)."""
    manifest = get_service().manifest
    data = csv_bytes(sample_rows(manifest, rows), manifest.feature_names)
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    record = copy.deepcopy(load_event("s3_put_csv")["Records"][0])
    obj = record["s3"]["object"]
    obj.update(key=key, size=len(data), eTag=answer["ETag"].strip('"'))
    obj.pop("versionId", None)
    return dict(record)


def handle(*records: dict[str, Any]) -> list[dict[str, Any]]:
    result = app.lambda_handler({"Records": list(records)}, BatchContext(function_name="onnxlambda-batch"))
    return list(result["results"])


def executions(sfn: Any, arn: str) -> list[dict[str, Any]]:
    return list(sfn.list_executions(stateMachineArn=arn)["executions"])


def test_small_objects_are_scored_here_and_large_ones_start_one_execution(aws: tuple[Any, Any, str]) -> None:
    s3, sfn, arn = aws
    # GIVEN an event with a small, a large and another small object (the threshold in between)
    small, large, other = (
        put(s3, "incoming/a.csv", 10),
        put(s3, "incoming/big.csv", 200),
        put(s3, "incoming/c.csv", 5),
    )
    assert small["s3"]["object"]["size"] < MIN_BYTES <= large["s3"]["object"]["size"]
    # WHEN the batch function handles it
    results = handle(small, large, other)
    # THEN the small ones are scored here, in the event's order around the large one...
    assert [(r["key"], r["status"]) for r in results] == [
        ("incoming/a.csv", "succeeded"),
        ("incoming/big.csv", "started"),
        ("incoming/c.csv", "succeeded"),
    ]
    # ... and the large one started exactly one execution, named after the object version and the
    # model, whose input is the object as the event names it
    [started] = executions(sfn, arn)
    etag = large["s3"]["object"]["eTag"]
    assert started["name"] == execution_name(BUCKET, "incoming/big.csv", etag, get_service().manifest.sha256)
    assert results[1]["execution"] == {
        "arn": started["executionArn"],
        "name": started["name"],
        "already": False,
    }
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert json.loads(described["input"]) == {
        "bucket": BUCKET,
        "key": "incoming/big.csv",
        "version_id": None,
        "etag": etag,
        "size": large["s3"]["object"]["size"],
    }
    # AND nothing was written for it yet: its summary is the execution's to write
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix="scored/big.csv/").get("Contents")


def test_a_duplicate_event_starts_nothing_new(aws: tuple[Any, Any, str]) -> None:
    s3, sfn, arn = aws
    record = put(s3, "incoming/big.csv", 200)
    first = handle(record)
    # WHEN S3 delivers the same record again while the execution runs (same name, same input)
    again = handle(record)
    # THEN StartExecution answers with the same execution
    assert again[0]["execution"] == first[0]["execution"]
    # AND once it has ended, the name is refused: still started once, reported as such
    sfn.stop_execution(executionArn=first[0]["execution"]["arn"])
    late = handle(record)
    assert late[0]["status"] == "started"
    assert late[0]["execution"] == {**first[0]["execution"], "already": True}
    assert len(executions(sfn, arn)) == 1


def test_an_object_already_scored_is_skipped_and_an_output_key_refused(aws: tuple[Any, Any, str]) -> None:
    s3, sfn, arn = aws
    # GIVEN a large object whose succeeded summary exists (scored once by this model)
    record = put(s3, "incoming/big.csv", 200)
    app.distributed = DistributedConfig(state_machine_arn=arn, min_bytes=10**9)  # score it here once
    [scored] = handle(record)
    assert scored["status"] == "succeeded"
    app.distributed = DistributedConfig(state_machine_arn=arn, min_bytes=MIN_BYTES)
    # WHEN its event comes again, and an event names a large key under the output prefix
    output_key = put(s3, "incoming/x.csv", 200)
    output_key["s3"]["object"]["key"] = "scored/big.csv/summary.json"
    results = handle(record, output_key)
    # THEN the first is skipped, the second refused (the recursion guard), and nothing started
    assert [r["status"] for r in results] == ["skipped", "refused"]
    assert executions(sfn, arn) == []


def test_an_execution_that_cannot_start_fails_the_event_after_the_others(
    aws: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, _, arn = aws
    missing = arn.replace("onnxlambda-large-objects", "gone")
    monkeypatch.setattr(app, "distributed", DistributedConfig(state_machine_arn=missing, min_bytes=MIN_BYTES))
    # GIVEN a large object whose state machine cannot be started, then a small one
    large, small = put(s3, "incoming/big.csv", 200), put(s3, "incoming/a.csv", 10)
    # WHEN the event is handled THEN the small one is scored and the event fails once, for the retry
    # and then the on-failure queue (as an S3 failure does on the single path)
    with pytest.raises(BatchEventError, match=r"1 of 2 objects.*big\.csv: StateMachineDoesNotExist"):
        handle(large, small)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="scored/a.csv/")["KeyCount"] == 3


def test_execution_names_are_valid_stable_and_one_per_object_version_and_model() -> None:
    name = execution_name(BUCKET, "incoming/2026/days & nights (v2).csv", "e" * 32, "a" * 64)
    # 1-80 characters, only [0-9A-Za-z_-] (API_StartExecution.html `name`)
    assert re.fullmatch(r"[0-9A-Za-z_-]{1,80}", name)
    assert name.startswith("days-nights-v2-csv-")
    assert name == execution_name(BUCKET, "incoming/2026/days & nights (v2).csv", "e" * 32, "a" * 64)
    others = {
        execution_name(BUCKET, "incoming/2026/days & nights (v2).csv", "f" * 32, "a" * 64),
        execution_name(BUCKET, "incoming/2026/days & nights (v2).csv", "e" * 32, "b" * 64),
        execution_name(BUCKET, "incoming/2027/days & nights (v2).csv", "e" * 32, "a" * 64),
        execution_name("other", "incoming/2026/days & nights (v2).csv", "e" * 32, "a" * 64),
    }
    assert len(others) == 4
    assert name not in others
    assert len(execution_name(BUCKET, "incoming/" + "x" * 500, "e", "a")) <= 80


def test_the_work_prefix_overlaps_neither_input_nor_output() -> None:
    batch = BatchConfig()
    DistributedConfig(work_prefix="work/").check(batch)
    for bad in ("incoming/", "incoming/work/", "scored/", "scored/work/"):
        with pytest.raises(ValueError, match="overlaps"):
            DistributedConfig(work_prefix=bad).check(batch)
    with pytest.raises(ValueError, match="between 0 and 100"):
        DistributedConfig(tolerated_failure_percentage=101)
    assert not DistributedConfig(min_bytes=5).enabled  # no state machine: every object takes the single path
    assert DistributedConfig(state_machine_arn="arn:x", min_bytes=5).enabled
