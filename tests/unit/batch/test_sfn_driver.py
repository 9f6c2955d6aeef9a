"""The large-object state machine, run by the local driver (devtools/sfnlocal.py: a TEST HARNESS
following Distributed Map's documented semantics; production runs on Step Functions) with the
range function's handler in process and moto's S3.

The definition file itself is interpreted (statemachines/score_large_object.asl.json), so every
path it reads from a step's answer is checked against what the handler really answers. The same
run under the Lambda emulator is tests/integration/test_distributed_emulated.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, sample_rows
from devtools.sfnlocal import Faults, LocalStateMachine, load_definition
from functions.batch import distributed as handler
from functions.batch import environment
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.job import DistributedConfig
from onnxlambda.serving.service import get_service
from tests.conftest import ROOT, FakeLambdaContext
from tests.unit.batch.twopaths import comparable, single

BUCKET = "onnxlambda-sfn-driver"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:onnxlambda-range"
DEFINITION = ROOT / "statemachines" / "score_large_object.asl.json"
CHUNK_ROWS = 100


class RangeContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class InProcess:
    """Invokes the range function's handler as Lambda would, and answers as Lambda answers: the
    function's result, or its error document ({"errorType", "errorMessage"})."""

    calls: list[tuple[str, dict[str, Any]]]

    def __call__(self, function: str, payload: dict[str, Any]) -> Any:
        assert function.startswith(FUNCTION), function  # the alias, or the version the plan pinned
        self.calls.append((function, payload))
        context = RangeContext(function_name="onnxlambda-range", invoked_function_arn=function)
        try:
            return handler.lambda_handler(json.loads(json.dumps(payload)), context)
        except Exception as exc:
            return {"errorType": type(exc).__name__, "errorMessage": str(exc)}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        monkeypatch.setattr(environment, "_s3", client)
        monkeypatch.setattr(handler, "config", BatchConfig(chunk_rows=CHUNK_ROWS))
        yield client


def configure(monkeypatch: pytest.MonkeyPatch, *, range_bytes: int = 4_000, tolerated: float = 0.0) -> None:
    monkeypatch.setattr(
        handler,
        "distributed",
        DistributedConfig(range_bytes=range_bytes, max_concurrency=3, tolerated_failure_percentage=tolerated),
    )


def machine(s3: Any, faults: Faults | None = None) -> tuple[LocalStateMachine, InProcess]:
    invoke = InProcess([])
    definition = load_definition(DEFINITION, {"RangeFunctionAlias": f"{FUNCTION}:live"})
    sm = LocalStateMachine(definition, invoke, s3, name="onnxlambda-large-objects", faults=faults or Faults())
    return sm, invoke


def upload(s3: Any, key: str, rows: int, seed: int = 7) -> dict[str, Any]:
    """A CSV with ids (some holding a quoted line break), a stray quote, a blank line and a row
    with one field too many; the execution input for it, as the batch function builds it."""
    manifest = get_service().manifest
    sampled = sample_rows(manifest, rows, seed=seed)
    text = csv_bytes(
        [{"id": f"tok-{i}" if i % 11 else f"tok\n{i}", **r} for i, r in enumerate(sampled)],
        ["id", *manifest.feature_names],
    )
    lines = text.split(b"\n")
    lines[40] = lines[40].replace(b",", b',"', 1)
    lines[77] = b"   "
    lines[300] += b",extra"
    data = b"\n".join(lines)
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return {
        "bucket": BUCKET,
        "key": key,
        "version_id": answer.get("VersionId"),
        "etag": answer["ETag"].strip('"'),
        "size": len(data),
    }


def the_single_path(s3: Any, key: str) -> Any:
    service = get_service()
    return single(s3, service.runtime, service.validator, BUCKET, key, chunk_rows=CHUNK_ROWS)


def summary_of(s3: Any, execution: Any) -> dict[str, Any]:
    key = execution.output["merged"]["summary"]
    return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def output(s3: Any, summary: dict[str, Any], kind: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=summary["output"][kind])["Body"].read())


def scored_actions(invoke: InProcess) -> list[str]:
    return [p["action"] for _, p in invoke.calls]


def test_a_large_file_through_the_state_machine_is_the_single_path(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    # GIVEN a 1,500-row CSV (with a quoted line break every 11 rows, a stray quote, a blank line,
    # a row with one field too many) that plans into several ranges
    obj = upload(s3, "incoming/day.csv", 1_500)
    sm, invoke = machine(s3)
    # WHEN the state machine runs on the execution input the batch function sends
    execution = sm.run(obj, name="day")
    # THEN it succeeds through plan, one child per range, merge
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    [run] = sm.map_runs
    assert run.total == run.succeeded > 1
    assert scored_actions(invoke).count("score_range") == run.total
    assert invoke.calls[0][1]["action"] == "plan"
    # AND every task after the plan ran on the version the plan ran on
    assert {f for f, p in invoke.calls if p["action"] != "plan"} == {FUNCTION}
    # AND the outputs are the single path's, byte for byte, and the summaries the same document
    summary = summary_of(s3, execution)
    reference = the_single_path(s3, "incoming/day.csv")
    assert output(s3, summary, "scored") == reference.scored
    assert output(s3, summary, "errors") == reference.errors
    assert comparable(summary) == comparable(reference.summary)
    assert summary["rows"]["rejected"] >= 2
    assert summary["scored_by"]["path"] == "step_functions"
    assert summary["scored_by"]["ranges"] == run.total
    assert summary["scored_by"]["map_run"] == run.arn
    # AND the output prefix holds the three files and nothing else
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=summary["output"]["prefix"])["Contents"]
    assert len(listing) == 3


def test_injected_failures_are_retried_and_change_nothing(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch)
    obj = upload(s3, "incoming/flaky.csv", 1_500)
    # GIVEN invokes that fail the way Lambda can: a service error before the function runs (twice),
    # a response lost after the function ran (so it runs again), a crash; and the plan throttled
    faults = Faults(
        {
            ("score_range", 1): ["service", "service"],
            ("score_range", 2): ["lost"],
            ("score_range", 3): ["error"],
            ("plan", None): ["service"],
            ("merge", None): ["lost"],
        }
    )
    sm, invoke = machine(s3, faults)
    # WHEN it runs
    execution = sm.run(obj, name="flaky")
    # THEN every fault was retried (Retry on each Task, never on the Map)...
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert len(faults.injected) == 6
    retried = [(e.state, e.detail["error"]) for e in sm.history if e.kind == "retry"]
    assert sorted(retried) == sorted(
        [
            ("Plan", "Lambda.ServiceException"),
            ("ScoreRange", "Lambda.ServiceException"),
            ("ScoreRange", "Lambda.ServiceException"),
            ("ScoreRange", "Lambda.SdkClientException"),
            ("ScoreRange", "Lambda.Unknown"),
            ("Merge", "Lambda.SdkClientException"),
        ]
    )
    # ... the range whose response was lost ran twice, and its second run found its part whole
    answers = [p for _, p in invoke.calls if p["action"] == "score_range" and p["range"]["index"] == 2]
    assert [a["attempt"] for a in answers] == [0, 1]
    # ... and the output is still the single path's, nothing lost, nothing twice
    summary = summary_of(s3, execution)
    reference = the_single_path(s3, "incoming/flaky.csv")
    assert output(s3, summary, "scored") == reference.scored
    assert output(s3, summary, "errors") == reference.errors
    assert comparable(summary) == comparable(reference.summary)
    # (ranges 1 and 3 were written by a retry; range 2 by its first attempt, which the retry found whole)
    assert summary["scored_by"]["ranges_retried"] == 2


def test_a_range_that_keeps_failing_within_the_tolerance_lands_in_the_errors_file(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, tolerated=50)
    obj = upload(s3, "incoming/tolerated.csv", 1_500)
    # GIVEN a range whose every attempt fails, and a run that tolerates half its ranges failing
    faults = Faults({("score_range", 1): ["error"] * 10})
    sm, _ = machine(s3, faults)
    execution = sm.run(obj, name="tolerated")
    # THEN the run succeeds with that range's rows rejected as range_failed, one errors line each
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    [run] = sm.map_runs
    assert run.failed == 1
    summary = summary_of(s3, execution)
    reference = the_single_path(s3, "incoming/tolerated.csv")
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=execution.output["plan"]["Payload"]["manifest_key"])["Body"].read()
    )
    lost = manifest[1]
    rows = range(lost["rows_before"] + 1, lost["rows_before"] + lost["rows"] + 1)
    assert summary["rejected_by_code"]["range_failed"] == len(rows)
    assert summary["rows"]["read"] == reference.summary["rows"]["read"]
    assert summary["rows"]["scored"] + summary["rows"]["rejected"] == summary["rows"]["read"]
    assert summary["lines"]["total"] == reference.summary["lines"]["total"]
    assert summary["scored_by"]["ranges_failed"] == [1]
    errors = [json.loads(line) for line in output(s3, summary, "errors").splitlines()]
    failed = [e for e in errors if e["errors"][0]["code"] == "range_failed"]
    assert [e["row"] for e in failed] == list(rows)
    assert "range 1 " in failed[0]["errors"][0]["message"]
    assert "Lambda.Unknown" in failed[0]["errors"][0]["message"]
    assert [e["row"] for e in errors] == sorted(e["row"] for e in errors)  # in row order
    # AND every other row is scored exactly as the single path scored it
    assert reference.scored is not None
    kept = [r for r in records(reference.scored)[1:] if int(r[0]) not in rows]
    assert records(output(s3, summary, "scored"))[1:] == kept


def records(scored: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(scored.decode())))


def test_beyond_the_tolerance_the_run_fails_with_a_failed_summary_and_a_rerun_finishes_it(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, tolerated=0)
    obj = upload(s3, "incoming/broken.csv", 1_500)
    # GIVEN a range whose every attempt fails, and no failure tolerated
    sm, _ = machine(s3, Faults({("score_range", 2): ["error"] * 10}))
    # WHEN it runs
    execution = sm.run(obj, name="broken")
    [first] = sm.map_runs
    # THEN the execution fails (the alarm on failed executions fires), and summary.json says why
    assert (execution.status, execution.error) == ("FAILED", "LargeObjectFailed")
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=failed_summary_key(s3))["Body"].read())
    assert summary["status"] == "failed"
    assert summary["error"]["code"] == "too_many_range_failures"
    assert summary["error"]["message"].startswith("States.ExceedToleratedFailureThreshold")
    assert summary["output"]["scored"] is None
    assert summary["scored_by"]["ranges_failed"] == 1
    # WHEN the object is run again (a new execution, the fault gone)
    again, invoke = machine(s3)
    execution = again.run(obj, name="broken-rerun")
    # THEN the ranges the failed run scored are not scored again (once the threshold was passed it
    # started no new child), the others are, and the result is the single path's
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    statuses = [c.output["status"] for c in again.map_runs[0].children]
    assert statuses.count("skipped") == first.succeeded > 0
    assert statuses[2] == "scored"
    summary = summary_of(s3, execution)
    reference = the_single_path(s3, "incoming/broken.csv")
    assert output(s3, summary, "scored") == reference.scored
    assert comparable(summary) == comparable(reference.summary)
    assert "score_range" in scored_actions(invoke)


def failed_summary_key(s3: Any) -> str:
    """Where the failure report wrote summary.json (the only summary under scored/)."""
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="scored/")["Contents"]
    [key] = [o["Key"] for o in listing if o["Key"].endswith("summary.json")]
    return str(key)


def test_refused_skipped_and_unreadable_objects_end_without_a_map_run(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    obj = upload(s3, "incoming/once.csv", 300)
    sm, _ = machine(s3)
    assert sm.run(obj, name="once").status == "SUCCEEDED"
    # GIVEN an object already scored, an output key (recursion guard), a file that is not text
    s3.put_object(Bucket=BUCKET, Key="incoming/binary.csv", Body=b"PK\x03\x04" + bytes(range(256)))
    cases = {
        "skipped": obj,
        "refused": {**obj, "key": "scored/once.csv/summary.json"},
        "failed": {**obj, "key": "incoming/binary.csv", "etag": None, "version_id": None},
    }
    for status, given in cases.items():
        again, invoke = machine(s3)
        # WHEN each runs
        execution = again.run(given)
        # THEN the plan says so, no range is scored, and the execution ends well (a bad file is the
        # file's failure, reported in its summary, as on the single path; not the service's)
        assert execution.status == "SUCCEEDED"
        assert execution.output["plan"]["Payload"]["status"] == status
        assert again.map_runs == []
        assert scored_actions(invoke) == ["plan"]
    failed = json.loads(
        s3.get_object(Bucket=BUCKET, Key=execution.output["plan"]["Payload"]["summary"])["Body"].read()
    )
    assert (failed["status"], failed["error"]["code"]) == ("failed", "corrupt")


def test_no_row_reaches_step_functions(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, tolerated=50)
    obj = upload(s3, "incoming/private.csv", 1_500)
    sm, invoke = machine(s3, Faults({("score_range", 1): ["error"] * 10}))
    execution = sm.run(obj, name="private")
    assert execution.status == "SUCCEEDED"
    # GIVEN every id of the file is a token "tok-<n>" / "tok\n<n>"
    # THEN no token is in what Step Functions holds: task payloads and answers (execution
    # history), the Map's items (the manifest), child inputs and outputs (ResultWriter files)
    held = [json.dumps(p) for _, p in invoke.calls]
    held += [json.dumps(c.input) + json.dumps(c.output) for run in sm.map_runs for c in run.children]
    held += [json.dumps(e.detail) for e in sm.history]
    held.append(json.dumps(execution.output))
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="work/")["Contents"]]:
        if key.endswith(".json"):
            held.append(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())
    assert held
    assert not [h for h in held if "tok" in h]


def test_a_step_error_carries_no_message_when_fields_are_redacted(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    obj = upload(s3, "incoming/secret.csv", 300)

    def leaky(*_: Any, **__: Any) -> Any:
        raise ValueError("could not convert 'tok-secret' to float")

    # GIVEN ONNXLAMBDA_REDACT_FIELDS is set and a range step fails with a message that quotes a value
    monkeypatch.setattr(handler, "settings", replace(handler.settings, redact_fields=frozenset({"island"})))
    monkeypatch.setattr(handler, "score_range", leaky)
    sm, _ = machine(s3)
    execution = sm.run(obj, name="secret")
    # THEN the run fails (no tolerance), and the error Step Functions records is the type only:
    # in the history of retries, and in the note the range's failure left for the merge
    assert execution.status == "FAILED"
    retries = [e.detail["error"] for e in sm.history if e.kind == "retry"]
    assert retries
    assert set(retries) == {"WithheldError"}
    notes = [
        json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="work/")["Contents"]
        if o["Key"].endswith(".failed.json")
    ]
    assert notes
    for note in notes:
        assert note["error"] == "WithheldError"
        assert "ValueError: message withheld" in note["cause"]
        assert "tok-secret" not in note["cause"]


@pytest.mark.parametrize("step", ["plan", "merge"])
def test_a_plan_or_merge_that_keeps_failing_ends_in_a_failed_summary(
    s3: Any, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    configure(monkeypatch)
    obj = upload(s3, f"incoming/{step}-down.csv", 300)
    # GIVEN the plan (or the merge) failing on every attempt
    sm, _ = machine(s3, Faults({(step, None): ["error"] * 10}))
    # WHEN the object is run
    execution = sm.run(obj, name=f"{step}-down")
    # THEN after its retries the run fails, with a failed summary that says so, and no output file
    assert (execution.status, execution.error) == ("FAILED", "LargeObjectFailed")
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=failed_summary_key(s3))["Body"].read())
    assert (summary["status"], summary["error"]["code"]) == ("failed", "run_failed")
    assert summary["error"]["message"].startswith("Lambda.Unknown")
    assert summary["input"]["etag"] == obj["etag"]
    assert summary["output"]["scored"] is None
    retries = [e for e in sm.history if e.kind == "retry" and e.state == step.capitalize()]
    assert len(retries) == 2  # the catch-all retrier's 2 attempts after the first
