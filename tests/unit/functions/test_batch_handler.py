"""The batch handler with the S3 event payloads in events/, against moto; and the template's
guarantees for the batch path (recursion guard, least privilege, on-failure destination)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from functions.batch import app, environment
from onnxlambda.batch.event import BatchEventError
from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.serving.service import get_service
from onnxlambda_cli.cloudformation import load_template
from tests.conftest import ROOT, FakeLambdaContext, load_event
from tests.unit.infra.test_template_release import transformed

BUCKET = load_event("s3_put_csv")["Records"][0]["s3"]["bucket"]["name"]


class BatchContext(FakeLambdaContext):
    """A fresh batch invocation: 15 minutes ahead (the shared fake has the API's 10 s)."""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return BatchContext(function_name="onnxlambda-batch")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        monkeypatch.setattr(environment, "_s3", client)
        yield client


def keys(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.mark.parametrize(("event", "fmt"), [("s3_put_csv", "csv"), ("s3_put_jsonl", "jsonl")])
def test_put_event_scores_the_object(
    s3: Any, lambda_context: FakeLambdaContext, event: str, fmt: str
) -> None:
    # GIVEN the object named in the event exists
    manifest = get_service().manifest
    rows = sample_rows(manifest, 12)
    data = csv_bytes(rows, manifest.feature_names) if fmt == "csv" else jsonl_bytes(rows)
    s3.put_object(Bucket=BUCKET, Key=f"incoming/penguins.{fmt}", Body=data)
    # WHEN the handler receives the S3 put event
    result = app.lambda_handler(load_event(event), lambda_context)
    # THEN it reports one succeeded object, and scored/errors/summary files exist
    [one] = result["results"]
    assert one["status"] == "succeeded"
    assert one["rows"] == {"read": 12, "scored": 12, "rejected": 0}
    assert len(keys(s3, "scored/")) == 3
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=one["summary"])["Body"].read())
    assert summary["input"]["format"] == fmt


def test_url_encoded_keys_are_decoded(s3: Any, lambda_context: FakeLambdaContext) -> None:
    # GIVEN an object whose key has spaces (URL-encoded in the event)
    manifest = get_service().manifest
    s3.put_object(
        Bucket=BUCKET,
        Key="incoming/my data 2026.csv",
        Body=csv_bytes(sample_rows(manifest, 2), manifest.feature_names),
    )
    result = app.lambda_handler(load_event("s3_put_encoded_key"), lambda_context)
    assert result["results"][0]["status"] == "succeeded"
    assert result["results"][0]["key"] == "incoming/my data 2026.csv"


def test_an_event_for_the_output_prefix_is_refused(s3: Any, lambda_context: FakeLambdaContext) -> None:
    # GIVEN an event for a key under the output prefix (a mis-configured trigger)
    result = app.lambda_handler(load_event("s3_put_output_key"), lambda_context)
    # THEN nothing is read or written
    assert result["results"][0]["status"] == "refused"
    assert keys(s3, "") == []


def test_a_missing_object_is_reported_not_retried(s3: Any, lambda_context: FakeLambdaContext) -> None:
    # GIVEN a put event for an object that was deleted before the function ran
    # WHEN handled
    result = app.lambda_handler(load_event("s3_put_csv"), lambda_context)
    # THEN the handler returns (no retry can bring it back), with a failed summary saying why
    [one] = result["results"]
    assert (one["status"], one["error"]["code"]) == ("failed", "not_found")
    assert keys(s3, "scored/") == [one["summary"]]


def event_for(*objects: tuple[str, str]) -> dict[str, Any]:
    """One S3 event with a record per (bucket, key), from events/s3_put_csv.json."""
    template = load_event("s3_put_csv")
    records = []
    for bucket, key in objects:
        record = copy.deepcopy(template["Records"][0])
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"]["key"] = key
        records.append(record)
    return {"Records": records}


def put_csv(s3: Any, key: str, rows: int, bucket: str = BUCKET) -> None:
    manifest = get_service().manifest
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(sample_rows(manifest, rows), manifest.feature_names))


def summary_versions(s3: Any) -> dict[str, int]:
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix="scored/").get("Versions", [])
    return dict(Counter(v["Key"] for v in listing if v["Key"].endswith("summary.json")))


def test_every_record_is_scored_then_the_event_fails_once_and_the_retry_redoes_only_the_failure(
    s3: Any, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an event of three records whose second cannot be read yet (its bucket is missing:
    # S3 answers NoSuchBucket, an error the retry may not meet again)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    other = "onnxlambda-other-bucket"
    put_csv(s3, "incoming/a.csv", 10)
    put_csv(s3, "incoming/c.csv", 30)
    event = event_for((BUCKET, "incoming/a.csv"), (other, "incoming/b.csv"), (BUCKET, "incoming/c.csv"))
    # WHEN the event is handled
    with pytest.raises(BatchEventError) as failed:
        app.lambda_handler(event, lambda_context)
    # THEN the records after the failed one were scored too, and the event failed once at the end,
    # naming the object left to the retry and why
    assert f"{other}/incoming/b.csv: NoSuchBucket" in str(failed.value)
    assert "1 of 3 objects" in str(failed.value)
    done = summary_versions(s3)
    assert [k.split("/")[1] for k in sorted(done)] == ["a.csv", "c.csv"]
    # WHEN the object can be read and Lambda retries the same event
    s3.create_bucket(Bucket=other)
    put_csv(s3, "incoming/b.csv", 20, bucket=other)
    result = app.lambda_handler(event, lambda_context)
    # THEN only the failed object is scored; the finished ones are skipped, not rewritten
    assert [(r["key"], r["status"]) for r in result["results"]] == [
        ("incoming/a.csv", "skipped"),
        ("incoming/b.csv", "succeeded"),
        ("incoming/c.csv", "skipped"),
    ]
    assert [r["rows"]["scored"] for r in result["results"]] == [10, 20, 30]
    assert summary_versions(s3) == done  # one version each: nothing rewritten


class RunningOut(BatchContext):
    """Plenty of time for the first `generous` questions, then less than the safety margin."""

    def __init__(self, generous: int) -> None:
        super().__init__(function_name="onnxlambda-batch")
        self.generous = generous

    def get_remaining_time_in_millis(self) -> int:
        self.generous -= 1
        return 900_000 if self.generous >= 0 else 5_000


@pytest.mark.parametrize(
    ("generous", "second"),
    [(1, None), (2, "time_budget_exceeded")],
    ids=["not-started", "started-and-ran-out"],
)
def test_objects_left_without_time_are_retried(s3: Any, generous: int, second: str | None) -> None:
    # GIVEN two small files in one event, and a budget spent once the first is scored: before
    # the second starts, or part-way through it
    put_csv(s3, "incoming/first.csv", 5)
    put_csv(s3, "incoming/second.csv", 5)
    event = event_for((BUCKET, "incoming/first.csv"), (BUCKET, "incoming/second.csv"))
    # WHEN handled
    with pytest.raises(BatchEventError, match=r"second\.csv: Deferred"):
        app.lambda_handler(event, RunningOut(generous))
    # THEN the second is left to the retry: not started (no summary), or with its failed report
    codes = {}
    for key in keys(s3, "scored/"):
        if key.endswith("summary.json"):
            summary = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            codes[key.split("/")[1]] = (summary.get("error") or {}).get("code")
    assert codes == ({"first.csv": None} if second is None else {"first.csv": None, "second.csv": second})
    # AND the retry, with a fresh budget, scores it and skips the first
    result = app.lambda_handler(event, BatchContext(function_name="onnxlambda-batch"))
    assert [r["status"] for r in result["results"]] == ["skipped", "succeeded"]


# -- template -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template((ROOT / "template.yaml").read_text())


def test_only_the_input_prefix_triggers_and_output_goes_elsewhere(template: dict[str, Any]) -> None:
    fn = template["Resources"]["BatchFunction"]["Properties"]
    params = template["Parameters"]
    [rule] = fn["Events"]["InputObjectCreated"]["Properties"]["Filter"]["S3Key"]["Rules"]
    assert rule == {"Name": "prefix", "Value": {"Ref": "BatchInputPrefix"}}
    assert fn["Environment"]["Variables"]["ONNXLAMBDA_BATCH_INPUT_PREFIX"] == {"Ref": "BatchInputPrefix"}
    assert fn["Environment"]["Variables"]["ONNXLAMBDA_BATCH_OUTPUT_PREFIX"] == {"Ref": "BatchOutputPrefix"}
    inp, out = params["BatchInputPrefix"]["Default"], params["BatchOutputPrefix"]["Default"]
    assert not inp.startswith(out)
    assert not out.startswith(inp)


def test_batch_role_reads_only_input_and_writes_only_output(template: dict[str, Any]) -> None:
    [policy] = template["Resources"]["BatchFunction"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    read, write = statements["ReadInputPrefixOnly"], statements["WriteOutputPrefixOnly"]
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert read["Resource"]["Fn::Sub"][0].endswith("/${BatchInputPrefix}*")
    # (reading back its own summaries: a retry skips what is already scored)
    assert set(write["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"}
    assert write["Resource"]["Fn::Sub"][0].endswith("/${BatchOutputPrefix}*")
    listing = statements["ListOutputPrefixOnly"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${BatchOutputPrefix}*"}}}
    # the bucket the policy names is the bucket the function is told to use
    bucket = template["Resources"]["BatchBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    env = template["Resources"]["BatchFunction"]["Properties"]["Environment"]["Variables"][
        "ONNXLAMBDA_BATCH_BUCKET"
    ]
    assert env["Fn::Sub"] == bucket
    for statement in (read, write):
        assert statement["Resource"]["Fn::Sub"][0].startswith(f"arn:${{AWS::Partition}}:s3:::{bucket[0]}/")
        assert statement["Resource"]["Fn::Sub"][1] == bucket[1]
    assert listing["Resource"]["Fn::Sub"] == [f"arn:${{AWS::Partition}}:s3:::{bucket[0]}", bucket[1]]
    # ... and it may start the large-object state machine, nothing else of Step Functions
    assert statements["StartLargeObjectRuns"] == {
        "Sid": "StartLargeObjectRuns",
        "Effect": "Allow",
        "Action": "states:StartExecution",
        "Resource": {"Ref": "LargeObjectStateMachine"},
    }
    assert set(statements) == {
        "ReadInputPrefixOnly",
        "WriteOutputPrefixOnly",
        "ListOutputPrefixOnly",
        "StartLargeObjectRuns",
    }


def test_bucket_is_encrypted_private_versioned_and_tls_only(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    bucket = resources["BatchBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    [deny] = resources["BatchBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_failed_async_invocations_go_to_an_encrypted_queue(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    config = resources["BatchFunction"]["Properties"]["EventInvokeConfig"]
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == {"Fn::GetAtt": ["BatchFailureQueue", "Arn"]}
    assert resources["BatchFailureQueue"]["Properties"]["SqsManagedSseEnabled"] is True


def test_the_on_failure_wiring_sam_generates(template: dict[str, Any]) -> None:
    # Moto cannot run Lambda's asynchronous retries and destinations; this checks what SAM
    # makes of the template instead: the config on the alias S3 invokes, and the send permission.
    # GIVEN the transformed template (CloudFormation, as deployed)
    resources = transformed()
    # THEN the live alias gets 2 retries and the on-failure queue
    [config] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert config["FunctionName"] == {"Ref": "BatchFunction"}
    assert config["Qualifier"] == "live"
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["BatchFailureQueue", "Arn"]
    }
    # AND the function's role may send to that queue and nothing else in SQS
    role = resources["BatchFunctionRole"]["Properties"]
    sqs = [
        st
        for pol in role["Policies"]
        for st in pol["PolicyDocument"]["Statement"]
        if any(
            str(a).startswith("sqs:")
            for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        )
    ]
    assert sqs == [
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": ["BatchFailureQueue", "Arn"]},
        }
    ]
    # AND the S3 client's retry settings in the template are the ones the code documents
    env = template["Resources"]["BatchFunction"]["Properties"]["Environment"]["Variables"]
    settings = S3ClientSettings.from_env({k: str(v) for k, v in env.items() if isinstance(v, str)})
    assert settings.retry_mode == "standard"
    assert settings.max_attempts == int(env["ONNXLAMBDA_BATCH_S3_MAX_ATTEMPTS"])
