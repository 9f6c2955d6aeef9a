"""Faults under the real Lambda runtime (RIE + awslambdaric): broken models, requests during
init, and a function timeout. Each test says what the caller sees and what the logs say.

The wrong-sha256 case with a truncated file is test_api_emulated.py::test_a_tampered_model_never_serves;
here the other ways a model directory can be broken, and the no-half-loaded-state guarantees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools import serve
from devtools.rie import BuiltFunction, EmulatedFunction
from tests.conftest import MODELS, golden_rows, load_event
from tests.integration.fronts import patch_front, roomy_init
from tests.integration.test_api_emulated import http

HANDLERS = Path(__file__).parent / "handlers"


def _missing_model(d: Path) -> None:
    (d / "model.onnx").unlink()


def _truncated_with_matching_sha(d: Path) -> None:
    # a corrupt file whose manifest was (wrongly) updated to match: only onnxruntime can tell
    data = (d / "model.onnx").read_bytes()[:300]
    (d / "model.onnx").write_bytes(data)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    (d / "manifest.json").write_text(json.dumps(manifest))


def _wrong_sha_in_manifest(d: Path) -> None:
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(manifest))


def _missing_manifest(d: Path) -> None:
    (d / "manifest.json").unlink()


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    # fault: (how the model directory is broken, what the log must say)
    "model_missing": (_missing_model, "cannot read"),
    "model_truncated": (_truncated_with_matching_sha, "onnxruntime cannot load"),
    "wrong_sha256": (_wrong_sha_in_manifest, "refusing to serve a model that is not the one described"),
    "manifest_missing": (_missing_manifest, "no manifest.json"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_broken_model_never_serves_and_says_why(
    api_function: BuiltFunction, tmp_path: Path, fault: str
) -> None:
    # GIVEN the built function pointed at a model directory broken in one way
    break_it, reason = FAULTS[fault]
    model_dir = tmp_path / "model"
    shutil.copytree(MODELS / "penguins", model_dir)
    break_it(model_dir)
    with EmulatedFunction(api_function, extra_env={"ONNXLAMBDA_MODEL_DIR": str(model_dir)}) as emulator:
        # WHEN every route is called, predict twice (a second chance must not half-load)
        answers = {
            name: emulator.invoke(load_event(event))
            for name, event in [
                ("health", "api_health"),
                ("predict", "api_predict_one"),
                ("model", "api_model"),
                ("predict_again", "api_predict_one"),
            ]
        }
        emulator.wait_for_report(4)
        log = "\n".join(emulator.log)
    # THEN health is 503 not_ready with the reason, and every other route 503 model_not_ready
    health = json.loads(answers["health"]["body"])
    assert (answers["health"]["statusCode"], health["status"]) == (503, "not_ready")
    assert reason in health["reason"]
    for name in ("predict", "model", "predict_again"):
        assert answers[name]["statusCode"] == 503, (name, answers[name])
        assert json.loads(answers[name]["body"])["error"]["code"] == "model_not_ready"
    # AND the cold start logged one clear structured error naming the cause
    failures = [json.loads(line) for line in emulator.log if "model failed to load" in line]
    assert len(failures) == 1, log
    assert failures[0]["level"] == "ERROR"
    assert reason in failures[0]["reason"]
    # AND the runtime stayed up: no crash, no reset, one init for all four requests
    assert "Reset initiated" not in log
    assert log.count("INIT START") == 1
    assert "Traceback" not in log


def test_requests_arriving_while_the_model_loads_wait_and_get_correct_answers(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the local front over two fresh emulators: listening, but no runtime initialised yet
    rows = golden_rows(MODELS / "penguins")
    golden = json.loads((MODELS / "penguins" / "golden.json").read_text())["cases"]
    roomy_init(monkeypatch)
    with serve.serving(build_dir, workers=2) as (server, front):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert not any("INIT START" in line for e in front.emulators for line in e.log)
        # WHEN six requests arrive at once (the model is loaded by the first invoke of each)
        results: dict[int, tuple[int, dict[str, Any]]] = {}

        def send(i: int) -> None:
            results[i] = http("POST", f"{base}/predict", json.dumps({"instances": [rows[i]]}).encode())

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        logs = ["\n".join(e.log) for e in front.emulators]
    # THEN each environment initialised exactly once, because of these requests
    assert [log.count("INIT RTDONE(status: success)") for log in logs] == [1, 1], logs
    # AND every request waited for the model and got the golden answer, none a 503 or a 5xx
    assert sorted(results) == list(range(6))
    for i, (status, body) in results.items():
        assert status == 200, body
        assert body["predictions"][0]["label"] == golden[i]["expected"]["label"]


def _post_slow(url: str, body: bytes, delay_s: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "x-test-delay-s": str(delay_s)},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_timed_out_request_is_a_5xx_and_the_next_one_gets_a_fresh_environment(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the front over one emulator running the real handler behind a test wrapper that can
    # be told to sleep, with the template's own 10 s function timeout
    def slow(fn: BuiltFunction) -> BuiltFunction:
        return dataclasses.replace(fn, handler="slow_app.lambda_handler")

    patch_front(monkeypatch, slow)
    python_path = BuiltFunction.from_build("ApiFunction", build_dir).opt_env()["PYTHONPATH"]
    row = json.dumps({"instances": golden_rows(MODELS / "penguins")[:1]}).encode()
    env = {"PYTHONPATH": f"{python_path}:{HANDLERS}"}
    with serve.serving(build_dir, workers=1, env=env) as (server, front):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        before = http("POST", f"{base}/predict", row)
        # WHEN a request runs past the function timeout
        timed_out = _post_slow(f"{base}/predict", row, delay_s=front.emulators[0].function.timeout_s + 2)
        # AND another request follows
        after = http("POST", f"{base}/predict", row)
        log = "\n".join(front.emulators[0].log)
    # THEN the caller of the slow request gets API Gateway's 5xx for a function error, no partial body
    assert before[0] == 200
    assert timed_out == (500, {"message": "Internal Server Error"})
    # AND the runtime was killed and the next request was served by a fresh init
    assert "Reset initiated: Timeout" in log
    assert log.count("INIT RTDONE(status: success)") == 2
    assert log.count('"ColdStart":[1.0]') == 2
    assert after[0] == 200
    assert after[1]["predictions"][0]["label"] == "Adelie"
