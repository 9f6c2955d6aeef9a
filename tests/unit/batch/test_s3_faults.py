"""S3 throttling and errors on the batch path: the handler's own S3 client (onnxlambda.batch.s3)
against moto, with `SlowDown` / 503 answers injected by a botocore `before-send` hook ahead of
moto's. Retries with backoff first; when they are exhausted, a clear failure (logged, raised)
with every multipart upload aborted and no output visible."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws

from devtools.batchdata import csv_bytes, csv_stream, sample_rows
from functions.batch import app, environment
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.event import BatchEventError
from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.batch.writer import MIN_PART_BYTES
from onnxlambda.serving.service import get_service
from tests.conftest import FakeLambdaContext, load_event
from tests.unit.functions.test_batch_handler import BatchContext

EVENT = load_event("s3_put_csv")
BUCKET = EVENT["Records"][0]["s3"]["bucket"]["name"]
KEY = EVENT["Records"][0]["s3"]["object"]["key"]
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>injected</RequestId></Error>"
)


class _Raw(io.BytesIO):
    """What botocore reads an injected answer's body from."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


@dataclass
class Throttle:
    """Answer the first `per_call` attempts of every `operation` call with 503 SlowDown (botocore
    numbers attempts in its `amz-sdk-request` header), without moto carrying them out; count
    every attempt of every operation."""

    operation: str
    per_call: int
    attempts: Counter[str] = field(default_factory=Counter)
    injected: int = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        name = kwargs["event_name"].rsplit(".", 1)[-1]
        self.attempts[name] += 1
        header = request.headers.get("amz-sdk-request", b"attempt=1")
        header = header.decode() if isinstance(header, bytes) else header
        attempt = int(header.split(";")[0].split("=")[1])
        if name != self.operation or attempt > self.per_call:
            return None  # on to moto
        self.injected += 1
        answer = AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Raw(SLOW_DOWN))
        # botocore calls every before-send handler and takes the first answer: point the refused
        # request elsewhere so moto's handler (after this one) does not carry it out anyway.
        request.url = "https://refused.invalid/"
        return answer


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asks for, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", slept.append)
    return slept


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler's own client (retry config from onnxlambda.batch.s3), moto behind it."""
    with mock_aws():
        monkeypatch.setattr(environment, "_s3", None)
        client = app.s3_client()
        client.create_bucket(Bucket=BUCKET)
        yield client


def throttle(s3: Any, operation: str, *, per_call: int) -> Throttle:
    hook = Throttle(operation, per_call)
    s3.meta.events.register_first("before-send.s3", hook)  # ahead of moto's own before-send
    return hook


def everything(s3: Any) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listing if not o["Key"].startswith("incoming/"))


def test_the_client_retries_in_standard_mode_with_bounded_timeouts() -> None:
    # GIVEN the defaults and an environment overriding them
    default = S3ClientSettings.from_env({})
    tuned = S3ClientSettings.from_env(
        {"ONNXLAMBDA_BATCH_S3_RETRY_MODE": "adaptive", "ONNXLAMBDA_BATCH_S3_MAX_ATTEMPTS": "8"}
    )
    # THEN botocore gets a retry mode, an attempt cap and both timeouts
    cfg = default.botocore_config()
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 5}  # 5 calls, not 5 retries
    assert (cfg.connect_timeout, cfg.read_timeout) == (5.0, 60.0)
    assert tuned.botocore_config().retries == {"mode": "adaptive", "total_max_attempts": 8}
    with pytest.raises(ValueError, match="RETRY_MODE"):
        S3ClientSettings.from_env({"ONNXLAMBDA_BATCH_S3_RETRY_MODE": "legacy-ish"})


def test_throttled_reads_and_writes_are_retried_with_backoff(
    s3: Any, backoffs: list[float], lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a 40-row file, and S3 answering SlowDown to the first 2 attempts of the read
    manifest = get_service().manifest
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=csv_bytes(sample_rows(manifest, 40), manifest.feature_names))
    reads = throttle(s3, "GetObject", per_call=2)
    # WHEN the put event is handled
    result = app.lambda_handler(EVENT, lambda_context)
    # THEN the read took 3 attempts with 2 backoffs between them, and the file was scored
    assert reads.attempts["GetObject"] == 3
    assert len(backoffs) == 2
    assert all(0.0 <= b <= 2.0 for b in backoffs), backoffs  # rand(0,1) * 1 s, then * 2 s
    [one] = result["results"]
    assert one["status"] == "succeeded"
    assert one["rows"] == {"read": 40, "scored": 40, "rejected": 0}


def test_throttled_writes_are_retried_and_the_output_is_whole(
    s3: Any, backoffs: list[float], lambda_context: FakeLambdaContext
) -> None:
    # GIVEN S3 answering SlowDown to the first 2 attempts of every PutObject
    manifest = get_service().manifest
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=csv_bytes(sample_rows(manifest, 40), manifest.feature_names))
    writes = throttle(s3, "PutObject", per_call=2)
    # WHEN the put event is handled
    result = app.lambda_handler(EVENT, lambda_context)
    # THEN errors, scored and summary were each written on the 3rd attempt, all three complete
    assert writes.attempts["PutObject"] == 3 * 3
    assert writes.injected == 3 * 2
    assert len(backoffs) == 6
    assert result["results"][0]["status"] == "succeeded"
    outputs = everything(s3)
    assert len(outputs) == 3
    scored = next(k for k in outputs if k.endswith("scored.csv"))
    assert s3.get_object(Bucket=BUCKET, Key=scored)["Body"].read().count(b"\n") == 41


@pytest.fixture(scope="module")
def two_parts_of_output() -> bytes:
    """A CSV whose scored output needs more than one 5 MiB part (so a multipart upload is open)."""
    return b"".join(csv_stream(get_service().manifest, 180_000, seed=8))


@pytest.mark.filterwarnings("ignore:No application metrics")  # a failed event counts nothing
def test_exhausted_retries_abort_the_upload_and_raise_a_clear_error(  # noqa: PLR0917 - fixtures
    s3: Any,
    backoffs: list[float],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    two_parts_of_output: bytes,
) -> None:
    # GIVEN a file large enough for a multipart scored output, and S3 throttling every UploadPart
    monkeypatch.setattr(app, "config", BatchConfig(part_bytes=MIN_PART_BYTES))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=two_parts_of_output)
    hook = throttle(s3, "UploadPart", per_call=99)
    # WHEN the put event is handled
    with pytest.raises(BatchEventError) as event_error:
        app.lambda_handler(EVENT, lambda_context)
    # THEN botocore tried max_attempts times, backing off in between, then the handler raised,
    # naming the object and SlowDown, with botocore's error as the cause: what Lambda records
    # for its retries and the on-failure destination
    attempts = S3ClientSettings.from_env().max_attempts
    assert hook.attempts["CreateMultipartUpload"] == 1
    assert hook.attempts["UploadPart"] == attempts
    assert len(backoffs) == attempts - 1
    assert f"{KEY}: ClientError SlowDown" in str(event_error.value)
    cause = event_error.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "SlowDown"
    assert f"reached max retries: {attempts - 1}" in str(cause)
    # AND one ERROR log line names the object, the error type and S3's code, with the traceback
    [failure] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "on-failure destination" in failure.getMessage()
    assert [getattr(failure, k) for k in ("key", "error_type", "s3_error_code")] == [
        KEY,
        "ClientError",
        "SlowDown",
    ]
    assert failure.exc_info is not None
    assert failure.exc_info[1] is cause
    # AND the multipart upload was aborted, and nothing is visible under the output prefix
    assert hook.attempts["AbortMultipartUpload"] == 1
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert everything(s3) == []


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return BatchContext(function_name="onnxlambda-batch")


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_a_failed_completion_leaves_no_scored_file_and_no_summary(
    s3: Any,
    backoffs: list[float],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    two_parts_of_output: bytes,
) -> None:
    # GIVEN every part uploads, but S3 keeps refusing to complete the scored file's upload
    monkeypatch.setattr(app, "config", BatchConfig(part_bytes=MIN_PART_BYTES))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=two_parts_of_output)
    hook = throttle(s3, "CompleteMultipartUpload", per_call=99)
    # WHEN the put event is handled
    with pytest.raises(BatchEventError):
        app.lambda_handler(EVENT, lambda_context)
    # THEN the upload was aborted after the last attempt, and no summary marks anything complete
    # (errors.jsonl, completed before the scored file, may exist: only summary.json says "done")
    assert hook.attempts["CompleteMultipartUpload"] == S3ClientSettings.from_env().max_attempts
    assert hook.attempts["AbortMultipartUpload"] == 1
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    outputs = everything(s3)
    assert not [k for k in outputs if k.endswith(("scored.csv", "summary.json"))], outputs
