"""The pre-traffic hook against the REAL built API function under the Lambda runtime emulator.

The hook runs in-process with its Lambda client pointed at the emulator (which serves the Invoke
API, for the function name `function`), so what it checks is the `sam build` output: function
code, core layer and a model layer. Only CodeDeploy's PutLifecycleEventHookExecutionStatus is
stubbed (moto 5 does not implement it): each test asserts the status the hook sent. The last
test runs the built hook itself under the emulator too, with a loopback recorder for that call.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import onnx
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from devtools.rie import BuiltFunction, EmulatedFunction
from functions.pretraffic import app as hook
from tests.conftest import FakeLambdaContext, load_event

# The hook is typed for Powertools' LambdaContext; the fake has the attributes it reads.
CONTEXT: Any = FakeLambdaContext()
HOOK_EVENT = {"DeploymentId": "d-TESTDEPLOY", "LifecycleEventHookExecutionId": "hook-execution-42"}


def built_model_dir(function: BuiltFunction) -> Path:
    return Path(function.opt_env()["ONNXLAMBDA_MODEL_DIR"])


def run_hook(
    emulator: EmulatedFunction, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], str]:
    """Run the hook against the emulated version; returns its result and the status sent to CodeDeploy."""
    monkeypatch.setenv("ONNXLAMBDA_TARGET_FUNCTION_VERSION", "function")  # the emulator's one function name
    monkeypatch.setenv(
        "ONNXLAMBDA_MODEL_DIR", str(model_dir)
    )  # the hook reads the same model layer as the version
    monkeypatch.setenv("ONNXLAMBDA_EXPECTED_MODEL_SHA256", "unset")
    lam = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{emulator.port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 0}, read_timeout=60),
    )
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    sent: list[str] = []
    monkeypatch.setattr(hook, "clients", {"lambda": lam, "codedeploy": codedeploy})
    with Stubber(codedeploy) as stub:
        stub.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": HOOK_EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
                "status": _Recorder(sent),
            },
        )
        result = hook.lambda_handler(HOOK_EVENT, CONTEXT)
        stub.assert_no_pending_responses()
    assert len(sent) == 1
    return result, sent[0]


class _Recorder:
    """Stubber parameter matcher that records the status the hook sent."""

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    def __eq__(self, other: object) -> bool:
        self.sent.append(str(other))
        return other in ("Succeeded", "Failed")

    def __hash__(self) -> int:
        return 0


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def rewrite_sha256(model_dir: Path, golden_too: bool) -> str:
    """Make the manifest (and optionally the golden set) name the model file as it now is."""
    sha = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    for name in ("manifest.json", "golden.json") if golden_too else ("manifest.json",):
        data = json.loads((model_dir / name).read_text())
        data["sha256" if name == "manifest.json" else "model_sha256"] = sha
        (model_dir / name).write_text(json.dumps(data))
    return sha


@pytest.fixture
def emulate(api_function: BuiltFunction) -> Iterator[Any]:
    started: list[EmulatedFunction] = []

    def start(function: BuiltFunction = api_function, **env: str) -> EmulatedFunction:
        emulator = EmulatedFunction(function, extra_env=env).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def test_correct_model_passes_and_the_response_names_the_version(
    emulate: Any, api_function: BuiltFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the built function serving the shipped model as published version 7
    emulator = emulate(AWS_LAMBDA_FUNCTION_VERSION="7")
    # WHEN the hook checks it
    result, sent = run_hook(emulator, built_model_dir(api_function), monkeypatch)
    # THEN CodeDeploy hears Succeeded
    assert (sent, result["problems"]) == ("Succeeded", [])
    # AND the version's responses and log lines name the Lambda version and the model version
    answer = emulator.invoke(load_event("api_predict_one"))
    assert json.loads(answer["body"])["model"] | {"sha256": "-"} == {
        "name": "penguins",
        "version": "1.0.0",
        "sha256": "-",
        "function_version": "7",
    }
    emulator.invoke(load_event("api_unknown_category"))  # refusals are logged at INFO
    emulator.wait_for_report(4)
    lines = [
        json.loads(line) for line in emulator.log if line.startswith("{") and '"function_version"' in line
    ]
    assert lines, emulator.log[-20:]
    assert {(line["function_version"], line["model_version"]) for line in lines} == {("7", "1.0.0")}


def test_changed_weights_fail_on_the_outputs(
    emulate: Any, api_function: BuiltFunction, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a model layer whose classifier weights were changed, shipped with a manifest and golden
    # set that name the new file (so it loads) but still carry the old expected outputs
    model_dir = copy_model(built_model_dir(api_function), tmp_path / "model")
    graph = onnx.load(model_dir / "model.onnx")
    [classifier] = [n for n in graph.graph.node if n.op_type == "LinearClassifier"]
    [coefficients] = [a for a in classifier.attribute if a.name == "coefficients"]
    coefficients.floats[:] = [w * 0.5 for w in coefficients.floats]
    onnx.save(graph, model_dir / "model.onnx")
    rewrite_sha256(model_dir, golden_too=True)
    emulator = emulate(ONNXLAMBDA_MODEL_DIR=str(model_dir))
    # WHEN the hook checks it
    result, sent = run_hook(emulator, model_dir, monkeypatch)
    # THEN Failed, for output differences only (identity matches, the function works)
    assert sent == "Failed"
    assert result["problems"]
    assert all("probabilities." in p or " label:" in p or p.startswith("...") for p in result["problems"]), (
        result
    )


def test_tampered_model_file_fails(
    emulate: Any, api_function: BuiltFunction, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a model layer whose model.onnx no longer matches the manifest's sha256
    model_dir = copy_model(built_model_dir(api_function), tmp_path / "model")
    with (model_dir / "model.onnx").open("ab") as f:
        f.write(b"\0")
    emulator = emulate(ONNXLAMBDA_MODEL_DIR=str(model_dir))
    # WHEN the hook checks it THEN the version is not ready (it refuses to load) and the hook fails
    result, sent = run_hook(emulator, model_dir, monkeypatch)
    assert sent == "Failed"
    [problem] = result["problems"]
    assert problem.startswith("GET /health answered 503")
    assert "sha256" in problem


def test_model_from_another_release_fails_on_identity(
    emulate: Any, api_function: BuiltFunction, monkeypatch: pytest.MonkeyPatch, diabetes_dir: Path
) -> None:
    # GIVEN the new version serves the shipped model but the hook holds another model's manifest
    emulator = emulate()
    result, sent = run_hook(emulator, diabetes_dir, monkeypatch)
    # THEN Failed on the model identity before any prediction is compared
    assert sent == "Failed"
    assert any(p.startswith("model.sha256") for p in result["problems"]), result


def test_crashing_function_fails(
    emulate: Any, monkeypatch: pytest.MonkeyPatch, api_function: BuiltFunction
) -> None:
    # GIVEN a version that crashes on every invoke (its configuration breaks the handler's init)
    emulator = emulate(api_function, ONNXLAMBDA_MAX_ROWS="not-a-number")
    # WHEN the hook checks it THEN it reports Failed with the function error
    result, sent = run_hook(emulator, built_model_dir(api_function), monkeypatch)
    assert sent == "Failed"
    [problem] = result["problems"]
    assert problem.startswith("function error: "), problem
    # (the runtime's own log shows why: the handler's init raised, naming the variable)
    assert any("ONNXLAMBDA_MAX_ROWS='not-a-number'" in line for line in emulator.log), emulator.log[-20:]


class _CodeDeployRecorder(http.server.BaseHTTPRequestHandler):
    """Loopback stand-in for CodeDeploy's one hook call (moto 5 does not implement it)."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers.get("X-Amz-Target", "")
        self.received.append({"target": target, **json.loads(body)})
        reply = json.dumps(
            {"lifecycleEventHookExecutionId": json.loads(body).get("lifecycleEventHookExecutionId")}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args: object) -> None:
        return


def test_the_built_hook_under_the_lambda_runtime_passes_a_good_release(
    emulate: Any, build_dir: Path, api_function: BuiltFunction
) -> None:
    # GIVEN the new API version and the BUILT hook, each under the Lambda runtime emulator, the
    # hook's AWS clients pointed (by the SDK's standard endpoint variables) at them
    api = emulate()
    recorder = http.server.HTTPServer(("127.0.0.1", 0), _CodeDeployRecorder)
    _CodeDeployRecorder.received = []
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        hook_function = BuiltFunction.from_build("PreTrafficHook", build_dir)
        hook_emulator = emulate(
            hook_function,
            ONNXLAMBDA_TARGET_FUNCTION_VERSION="function",
            AWS_ENDPOINT_URL_LAMBDA=f"http://127.0.0.1:{api.port}",
            AWS_ENDPOINT_URL_CODEDEPLOY=f"http://127.0.0.1:{recorder.server_port}",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        # WHEN CodeDeploy's lifecycle event arrives
        result = hook_emulator.invoke(HOOK_EVENT, timeout=120)
    finally:
        recorder.shutdown()
    # THEN the hook, running only on what the runtime and its layers provide, reports Succeeded
    assert result == {"status": "Succeeded", "problems": []}, hook_emulator.log[-20:]
    [call] = _CodeDeployRecorder.received
    assert call == {
        "target": "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus",
        "deploymentId": HOOK_EVENT["DeploymentId"],
        "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
        "status": "Succeeded",
    }
    # and its environment came from the built template: the model layer it shares with the API
    assert hook_function.opt_env()["ONNXLAMBDA_MODEL_DIR"] == api_function.opt_env()["ONNXLAMBDA_MODEL_DIR"]
