"""The local driver itself (devtools/sfnlocal.py, a test harness) on small definitions: does it do
what the Step Functions documentation says, where our definition relies on it?"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devtools.sfnlocal import Faults, LocalStateMachine

BUCKET = "onnxlambda-sfnlocal"
FN = "arn:aws:lambda:us-east-1:123456789012:function:f"


def task(**extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FN, "Payload": {"action": "work", "item.$": "$"}},
        "ResultSelector": {"got.$": "$.Payload"},
        **extra,
    }


def distributed_map(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": BUCKET, "Key": "items.json"},
                },
                "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "run.$": "$.run"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Work",
                    "States": {"Work": task(End=True)},
                },
                "End": True,
                **fields,
            }
        },
    }


def echo(failing: set[int] | None = None) -> Any:
    calls: list[Any] = []

    def invoke(function: str, payload: dict[str, Any]) -> Any:
        calls.append(payload)
        item = payload["item"]
        index = item.get("i", -1) if isinstance(item, dict) else -1
        if failing and index in failing:
            return {"errorType": "Boom", "errorMessage": f"item {index}"}
        return item

    invoke.calls = calls  # type: ignore[attr-defined]
    return invoke


def test_items_carry_their_index_and_value_and_the_map_input(s3: Any) -> None:
    # GIVEN a JSON array in S3 as the dataset (ItemReader InputType JSON)
    s3.put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps(["a", "b", "c"]))
    sm = LocalStateMachine(distributed_map(), echo(), s3)
    # WHEN the Map runs
    execution = sm.run({"run": "r1"})
    # THEN each child got {"i": Index, "v": Value, "run": ...} from ItemSelector, in item order
    assert execution.status == "SUCCEEDED"
    assert [c["got"] for c in execution.output] == [
        {"i": 0, "v": "a", "run": "r1"},
        {"i": 1, "v": "b", "run": "r1"},
        {"i": 2, "v": "c", "run": "r1"},
    ]


def test_item_batcher_batches_by_count_and_by_bytes(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps(list(range(10))))
    batcher = {"MaxItemsPerBatch": 4, "MaxInputBytesPerBatch": 1000, "BatchInput": {"run.$": "$.run"}}
    sm = LocalStateMachine(distributed_map(ItemBatcher=batcher), echo(), s3)
    execution = sm.run({"run": "x" * 40})
    # THEN each child got {"Items": [...], "BatchInput": ...} with at most 4 (selected) items
    inputs = [c.input for c in sm.map_runs[0].children]
    assert [len(b["Items"]) for b in inputs] == [4, 4, 2]
    assert [i["i"] for b in inputs for i in b["Items"]] == list(range(10))
    assert all(b["BatchInput"] == {"run": "x" * 40} for b in inputs)
    assert execution.status == "SUCCEEDED"
    # AND the byte limit cuts first when the items are large
    s3.put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps(["y" * 200] * 6))
    sm = LocalStateMachine(distributed_map(ItemBatcher=batcher), echo(), s3)
    sm.run({"run": "x" * 40})
    inputs = [c.input for c in sm.map_runs[0].children]
    assert [len(b["Items"]) for b in inputs] == [3, 3]
    assert all(len(json.dumps(b)) <= 1000 for b in inputs)


@pytest.mark.parametrize(
    ("failed", "tolerated", "status"), [(1, 25, "SUCCEEDED"), (2, 25, "FAILED"), (1, 0, "FAILED")]
)
def test_the_map_run_fails_when_failed_items_exceed_the_tolerated_percentage(
    s3: Any, failed: int, tolerated: int, status: str
) -> None:
    # GIVEN 4 items, `failed` of which always fail, and a tolerated percentage
    # ("Your Map Run fails if this value is exceeded": state-map-distributed.html)
    s3.put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps([0, 1, 2, 3]))
    sm = LocalStateMachine(
        distributed_map(ToleratedFailurePercentage=tolerated),
        echo(failing=set(range(failed))),
        s3,
        concurrency=1,
    )
    execution = sm.run({"run": "r"})
    assert execution.status == status
    if status == "FAILED":
        assert execution.error == "States.ExceedToleratedFailureThreshold"


def test_retry_counts_per_retrier_then_catch(s3: Any) -> None:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": task(
                Retry=[
                    {"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 1},
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Caught"}],
                End=True,
            ),
            "Caught": {"Type": "Succeed"},
        },
    }
    # GIVEN two service errors, then one other error, then another: 2 + 1 retries, then the catch
    faults = Faults({("work", None): ["service", "service", "error", "error"]})
    sm = LocalStateMachine(definition, echo(), s3, faults=faults)
    execution = sm.run({"x": 1})
    assert [e.detail["error"] for e in sm.history if e.kind == "retry"] == [
        "Lambda.ServiceException",
        "Lambda.ServiceException",
        "Lambda.Unknown",
    ]
    assert execution.status == "SUCCEEDED"
    assert execution.output["failure"]["Error"] == "Lambda.Unknown"


def test_what_the_driver_cannot_follow_is_refused_not_half_run(s3: Any) -> None:
    inline = distributed_map()
    inline["States"]["Map"]["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    with pytest.raises(NotImplementedError):
        LocalStateMachine(inline, echo(), s3).run({})
    wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
    with pytest.raises(NotImplementedError):
        LocalStateMachine(wait, echo(), s3).run({})
