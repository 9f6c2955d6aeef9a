"""The batch handler with the S3 event payloads in events/, against moto; and the template's
guarantees for the batch path (recursion guard, least privilege, on-failure destination)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from functions.batch import app
from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.serving.service import get_service
from onnxlambda_cli.stamp import load_template
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
        monkeypatch.setattr(app, "_s3", client)
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


@pytest.mark.filterwarnings("ignore:No application metrics")  # nothing to count for a failed event
def test_a_missing_object_raises_for_retry_and_the_on_failure_queue(
    s3: Any, lambda_context: FakeLambdaContext
) -> None:
    with pytest.raises(s3.exceptions.NoSuchKey):
        app.lambda_handler(load_event("s3_put_csv"), lambda_context)


# -- template -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template((ROOT / "template.yaml").read_text())


def test_only_the_input_prefix_triggers_and_output_goes_elsewhere(template: dict[str, Any]) -> None:
    fn = template["Resources"]["BatchFunction"]["Properties"]
    params = template["Parameters"]
    [rule] = fn["Events"]["InputObjectCreated"]["Properties"]["Filter"]["S3Key"]["Rules"]
    assert rule == {"Name": "prefix", "Value": {"Ref": "BatchInputPrefix"}}
    assert fn["Environment"]["Variables"]["BATCH_INPUT_PREFIX"] == {"Ref": "BatchInputPrefix"}
    assert fn["Environment"]["Variables"]["BATCH_OUTPUT_PREFIX"] == {"Ref": "BatchOutputPrefix"}
    inp, out = params["BatchInputPrefix"]["Default"], params["BatchOutputPrefix"]["Default"]
    assert not inp.startswith(out)
    assert not out.startswith(inp)


def test_batch_role_reads_only_input_and_writes_only_output(template: dict[str, Any]) -> None:
    [policy] = template["Resources"]["BatchFunction"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    read, write = statements["ReadInputPrefixOnly"], statements["WriteOutputPrefixOnly"]
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert read["Resource"]["Fn::Sub"][0].endswith("/${BatchInputPrefix}*")
    assert set(write["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert write["Resource"]["Fn::Sub"][0].endswith("/${BatchOutputPrefix}*")
    # the bucket the policy names is the bucket the function is told to use
    bucket = template["Resources"]["BatchBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    env = template["Resources"]["BatchFunction"]["Properties"]["Environment"]["Variables"]["BATCH_BUCKET"]
    assert env["Fn::Sub"] == bucket
    for statement in (read, write):
        assert statement["Resource"]["Fn::Sub"][0].startswith(f"arn:${{AWS::Partition}}:s3:::{bucket[0]}/")
        assert statement["Resource"]["Fn::Sub"][1] == bucket[1]
    assert set(statements) == {"ReadInputPrefixOnly", "WriteOutputPrefixOnly"}


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
    assert settings.max_attempts == int(env["BATCH_S3_MAX_ATTEMPTS"])
