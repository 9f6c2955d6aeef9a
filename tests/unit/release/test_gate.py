"""The pre-traffic gate and the hook handler, in-process: the API handler stands in for the new version.

The same gate runs against the built function under the Lambda runtime emulator in
tests/integration/test_pretraffic_hook.py; here each failure path is driven precisely.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from functions.api import app as api
from functions.pretraffic import app as hook
from onnxlambda.contract.manifest import GoldenSet, Manifest, load_golden, load_manifest
from onnxlambda.release.gate import FunctionError, http_event, lambda_invoker, run_golden_gate
from onnxlambda.release.golden import golden_request
from tests.conftest import FakeLambdaContext

VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:onnxlambda-test-api:7"
# The hook is typed for Powertools' LambdaContext; the fake has the attributes it reads.
CONTEXT: Any = FakeLambdaContext()
HOOK_EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-execution-1"}


@pytest.fixture
def model(penguins_dir: Any) -> tuple[Manifest, GoldenSet]:
    manifest = load_manifest(penguins_dir)
    return manifest, load_golden(penguins_dir, manifest)


def in_process(event: dict[str, Any]) -> Any:
    return api.lambda_handler(event, FakeLambdaContext())


def test_gate_passes_for_the_shipped_model(model: tuple[Manifest, GoldenSet]) -> None:
    # GIVEN the API handler serving the shipped model WHEN the gate runs THEN it passes
    result = run_golden_gate(in_process, *model)
    assert (result.passed, result.status, result.problems) == (True, "Succeeded", [])
    assert result.served_model is not None
    assert result.served_model["sha256"] == model[0].sha256


def test_gate_fails_when_the_release_was_built_for_another_model(model: tuple[Manifest, GoldenSet]) -> None:
    # GIVEN the release stamp names a different model.onnx than the one in the layer
    result = run_golden_gate(in_process, *model, expected_sha256="f" * 64)
    # THEN the gate fails before invoking anything
    assert result.status == "Failed"
    assert result.problems == [f"manifest sha256 {model[0].sha256} is not the released {'f' * 64}"]


def test_gate_fails_on_a_function_error(model: tuple[Manifest, GoldenSet]) -> None:
    def crashing(event: dict[str, Any]) -> Any:
        raise FunctionError("Unhandled: boom")

    result = run_golden_gate(crashing, *model)
    assert result.status == "Failed"
    assert result.problems == ["function error: Unhandled: boom"]


def test_gate_fails_when_the_function_answers_something_other_than_http(
    model: tuple[Manifest, GoldenSet],
) -> None:
    result = run_golden_gate(lambda event: {"errorMessage": "boom", "errorType": "RuntimeError"}, *model)
    assert result.status == "Failed"
    assert "GET /health returned no HTTP response" in result.problems[0]


def test_gate_fails_when_predict_refuses_the_golden_rows(model: tuple[Manifest, GoldenSet]) -> None:
    # GIVEN a version whose /predict answers 422 (e.g. a contract change that rejects golden rows)
    def refusing(event: dict[str, Any]) -> Any:
        if event["rawPath"] == "/predict":
            return {"statusCode": 422, "body": json.dumps({"error": {"code": "validation_failed"}})}
        return in_process(event)

    result = run_golden_gate(refusing, *model)
    assert result.status == "Failed"
    assert result.problems[0].startswith("POST /predict of the golden set answered 422")


def payload(result: object) -> dict[str, Any]:
    data = json.dumps(result).encode()
    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(data), len(data)), "ExecutedVersion": "7"}


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, Stubber]]:
    """The hook's two clients with botocore Stubbers (moto 5 does not implement the CodeDeploy call)."""
    monkeypatch.setenv("ONNXLAMBDA_TARGET_FUNCTION_VERSION", VERSION_ARN)
    monkeypatch.setenv("ONNXLAMBDA_EXPECTED_MODEL_SHA256", "unset")
    lam = boto3.client("lambda", region_name="us-east-1")
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    monkeypatch.setattr(hook, "clients", {"lambda": lam, "codedeploy": codedeploy})
    with Stubber(lam) as lam_stub, Stubber(codedeploy) as cd_stub:
        yield lam_stub, cd_stub
        lam_stub.assert_no_pending_responses()
        cd_stub.assert_no_pending_responses()


def expect_status(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": HOOK_EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


def expect_invoke(stub: Stubber, path: str, result: dict[str, Any]) -> None:
    stub.add_response(
        "invoke",
        result,
        {"FunctionName": VERSION_ARN, "InvocationType": "RequestResponse", "Payload": _PayloadFor(path)},
    )


class _PayloadFor:
    """Matches an invoke payload by the HTTP path of the API Gateway event it carries."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, bytes) and json.loads(other)["rawPath"] == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def test_hook_reports_succeeded_after_invoking_the_new_version_arn(
    stubbed: tuple[Stubber, Stubber], model: tuple[Manifest, GoldenSet]
) -> None:
    lam, codedeploy = stubbed
    # GIVEN the new version (by its ARN) answers like the shipped model
    expect_invoke(lam, "/health", payload(in_process(http_event("GET", "/health"))))
    predict = http_event("POST", "/predict", golden_request(model[1]))
    expect_invoke(lam, "/predict", payload(in_process(predict)))
    expect_status(codedeploy, "Succeeded")
    # WHEN CodeDeploy calls the hook THEN it reports Succeeded for this deployment
    assert hook.lambda_handler(HOOK_EVENT, CONTEXT)["status"] == "Succeeded"


def test_hook_reports_failed_on_a_function_error(stubbed: tuple[Stubber, Stubber]) -> None:
    lam, codedeploy = stubbed
    # GIVEN the new version crashes (Lambda answers 200 with FunctionError set)
    crash = payload({"errorMessage": "boom", "errorType": "RuntimeError"}) | {"FunctionError": "Unhandled"}
    expect_invoke(lam, "/health", crash)
    expect_status(codedeploy, "Failed")
    result = hook.lambda_handler(HOOK_EVENT, CONTEXT)
    assert result["status"] == "Failed"
    assert result["problems"][0].startswith("function error: Unhandled")


def test_hook_reports_failed_when_the_check_cannot_even_run(
    stubbed: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, codedeploy = stubbed
    # GIVEN a hook deployed without its target (a template mistake)
    monkeypatch.delenv("ONNXLAMBDA_TARGET_FUNCTION_VERSION")
    expect_status(codedeploy, "Failed")
    # THEN it still reports Failed rather than leave CodeDeploy waiting for an hour
    result = hook.lambda_handler(HOOK_EVENT, CONTEXT)
    assert result["problems"] == [
        "check could not run: ValueError: ONNXLAMBDA_TARGET_FUNCTION_VERSION is not set: "
        "the hook has no version to check"
    ]


def test_lambda_invoker_raises_on_function_errors() -> None:
    lam = boto3.client("lambda", region_name="us-east-1")
    with Stubber(lam) as stub:
        stub.add_response(
            "invoke", payload({"errorMessage": "Task timed out"}) | {"FunctionError": "Unhandled"}
        )
        with pytest.raises(FunctionError, match=r"Unhandled: .*Task timed out"):
            lambda_invoker(lam, VERSION_ARN)({"rawPath": "/health"})
