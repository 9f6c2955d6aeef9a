"""The large-object path with the built functions under the Lambda emulator and moto in server mode.

The built BatchFunction routes a large object to Step Functions (moto records the execution); the
local driver (devtools/sfnlocal.py, a TEST HARNESS: production runs Step Functions) runs
statemachines/score_large_object.asl.json on the execution's input, invoking emulated
BatchRangeFunction environments with the payloads the definition builds (exactly what the
lambda:invoke integration sends as the event). The same file is scored by the single path, and
the two outputs compared. Scaled down for CI; `make distributed-compare` runs 2 M rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from devtools import largeobject
from devtools.motoserver import function_env, moto_s3
from devtools.rie import BuiltFunction, EmulatedFunction
from devtools.sfnlocal import Faults
from onnxlambda.contract.manifest import Manifest, load_manifest
from tests.unit.batch.twopaths import comparable

BUCKET = largeobject.bucket()
ROWS = 60_000
RANGE_BYTES = str(256 * 1024)  # each range: one chunk of 10,000 rows (~480 KB)


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[str, Any]]:
    with moto_s3(BUCKET, versioned=True) as server:
        yield server


@pytest.fixture(scope="module")
def manifest(build_dir: Path) -> Manifest:
    built = BuiltFunction.from_build("BatchRangeFunction", build_dir)
    model_dir = next(d / "model" for d in built.layer_dirs if (d / "model").is_dir())
    return load_manifest(model_dir)


@pytest.fixture(scope="module")
def functions(build_dir: Path, moto: tuple[str, Any]) -> Iterator[dict[str, Any]]:
    """The batch function twice (routing large objects; scoring everything itself under single/),
    and two range function environments."""
    endpoint, _ = moto
    machine = largeobject.state_machine(endpoint)
    batch = BuiltFunction.from_build("BatchFunction", build_dir)
    with ExitStack() as stack:
        router = stack.enter_context(
            EmulatedFunction(
                batch,
                extra_env=function_env(
                    endpoint,
                    ONNXLAMBDA_BATCH_STATE_MACHINE_ARN=machine,
                    ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES="1000000",
                ),
            )
        )
        single = stack.enter_context(
            EmulatedFunction(
                batch,
                extra_env=function_env(
                    endpoint,
                    ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES="0",
                    ONNXLAMBDA_BATCH_OUTPUT_PREFIX="single/",
                ),
            )
        )
        pool = largeobject.range_functions(
            stack, build_dir, endpoint, 2, ONNXLAMBDA_BATCH_RANGE_BYTES=RANGE_BYTES
        )
        yield {"router": router, "single": single, "pool": pool, "endpoint": endpoint}


def upload(s3: Any, manifest: Manifest, key: str, rows: int) -> dict[str, Any]:
    """devtools.largeobject.sample_csv: quoted line breaks every 97th id, bad rows at known places."""
    data = largeobject.sample_csv(manifest, rows)
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return largeobject.put_event(key, len(data), answer["ETag"].strip('"'), answer.get("VersionId"))


def single_path(functions: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    answer = functions["single"].invoke(event, timeout=900)
    [result] = answer["results"]
    assert result["status"] == "succeeded", answer
    return dict(result)


def distributed_path(
    s3: Any, functions: dict[str, Any], event: dict[str, Any], name: str, faults: Faults | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    # WHEN the routing function gets the event...
    answer = functions["router"].invoke(event, timeout=300)
    [result] = answer["results"]
    assert result["status"] == "started", answer
    # ... and the driver runs the execution it started
    given = largeobject.started_input(functions["endpoint"], result["execution"]["arn"])
    machine, execution = largeobject.run(
        s3, functions["pool"], given, name=name, concurrency=2, faults=faults
    )
    return machine, execution, result


def get(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def summary(s3: Any, key: str) -> dict[str, Any]:
    return dict(json.loads(get(s3, key)))


def test_a_large_file_scored_through_distributed_map_is_the_single_path_with_retries_accounted(
    moto: tuple[str, Any], functions: dict[str, Any], manifest: Manifest
) -> None:
    _, s3 = moto
    # GIVEN a 60,000-row CSV (~3 MB: six ranges) with quoted line breaks and bad rows
    event = upload(s3, manifest, "incoming/large/day.csv", ROWS)
    # AND invokes that fail as Lambda's can: a service error before one range ran, a lost
    # response after another ran (it runs again), a crash of a third
    faults = Faults(
        {
            ("score_range", 1): ["service"],
            ("score_range", 2): ["lost"],
            ("score_range", 3): ["error"],
        }
    )
    machine, execution, result = distributed_path(s3, functions, event, "day", faults)
    # THEN the run succeeds, every fault retried
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    [run] = machine.map_runs
    assert run.total == run.succeeded == 6
    assert len(faults.injected) == 3
    assert sum(1 for e in machine.history if e.kind == "retry") == 3
    # AND its outputs are the single path's: the same scored and errors bytes, the same counts
    reference = summary(s3, single_path(functions, event)["summary"])
    mine = summary(s3, result["summary"])
    assert mine["scored_by"]["path"] == "step_functions"
    assert reference["scored_by"] == {"path": "single_invocation"}
    assert get(s3, mine["output"]["scored"]) == get(s3, reference["output"]["scored"])
    assert get(s3, mine["output"]["errors"]) == get(s3, reference["output"]["errors"])
    assert comparable(mine) == comparable(reference)
    assert mine["rows"]["read"] == ROWS
    short = ROWS // 1000
    not_numbers = sum(1 for i in range(1, ROWS + 1) if i % 1500 == 0 and i % 1000)
    assert mine["rejected_by_code"] == {"wrong_field_count": short, "wrong_type": not_numbers}
    # AND the output prefix holds the three files only; the parts' row data is gone from work/
    assert len(s3.list_objects_v2(Bucket=BUCKET, Prefix=mine["output"]["prefix"])["Contents"]) == 3
    work = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="work/large/day.csv/")["Contents"]]
    assert not [k for k in work if k.endswith((".scored.csv", ".errors.jsonl"))]
    # AND every task after the plan ran on the version the plan ran on
    functions_called = {c.action for c in functions["pool"].calls}
    assert {"plan", "score_range", "merge"} <= functions_called


def test_a_range_that_keeps_failing_is_accounted_within_the_tolerance(
    build_dir: Path, moto: tuple[str, Any], functions: dict[str, Any], manifest: Manifest
) -> None:
    endpoint, s3 = moto
    event = upload(s3, manifest, "incoming/large/tolerated.csv", 30_000)
    # GIVEN range functions that tolerate a fifth of the ranges failing, and a range that always fails
    with ExitStack() as stack:
        pool = largeobject.range_functions(
            stack,
            build_dir,
            endpoint,
            1,
            ONNXLAMBDA_BATCH_RANGE_BYTES=RANGE_BYTES,
            ONNXLAMBDA_BATCH_TOLERATED_FAILURE_PERCENTAGE="50",
        )
        answer = functions["router"].invoke(event, timeout=300)
        [result] = answer["results"]
        given = largeobject.started_input(endpoint, result["execution"]["arn"])
        _, execution = largeobject.run(
            s3,
            pool,
            given,
            name="tolerated",
            concurrency=1,
            faults=Faults({("score_range", 1): ["error"] * 10}),
        )
    # THEN the run succeeds and that range's rows are in errors.jsonl as range_failed, none lost
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    mine = summary(s3, result["summary"])
    assert mine["rows"]["read"] == 30_000
    assert mine["rows"]["scored"] + mine["rows"]["rejected"] == 30_000
    assert mine["scored_by"]["ranges_failed"] == [1]
    lost = mine["rejected_by_code"]["range_failed"]
    assert lost > 0
    errors = [json.loads(line) for line in get(s3, mine["output"]["errors"]).splitlines()]
    assert sum(1 for e in errors if e["errors"][0]["code"] == "range_failed") == lost
    assert [e["row"] for e in errors] == sorted(e["row"] for e in errors)
    assert (
        mine["lines"]["total"]
        == mine["lines"]["header"]
        + mine["lines"]["blank"]
        + mine["lines"]["scored"]
        + mine["lines"]["rejected"]
    )
