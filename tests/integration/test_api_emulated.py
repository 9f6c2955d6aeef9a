"""The built API function under the real Lambda runtime (RIE + awslambdaric), fed events/ payloads."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools.rie import BuiltFunction, EmulatedFunction
from devtools.serve import serving
from tests.conftest import EVENTS, MODELS, golden_rows, load_event

EXPECTED_STATUS = {
    "api_predict_one": 200,
    "api_predict_batch": 200,
    "api_predict_null_sex": 200,
    "api_health": 200,
    "api_model": 200,
    "api_bad_json": 400,
    "api_bad_shape": 400,
    "api_missing_feature": 422,
    "api_extra_feature": 422,
    "api_unknown_category": 422,
    "api_out_of_range": 422,
    "api_wrong_type": 422,
    "api_null_not_allowed": 422,
    "api_not_finite": 422,
    "api_empty": 422,
    "api_not_found": 404,
    "api_feedback": 202,
}


def test_every_event_file_has_an_expected_status() -> None:
    # GIVEN the events/ directory THEN each API event is covered by the table below
    assert {p.stem for p in EVENTS.glob("api_*.json")} == set(EXPECTED_STATUS)


def test_first_invoke_is_cold_and_the_rest_are_warm(api: EmulatedFunction) -> None:
    # GIVEN a fresh execution environment (this test runs first in the session)
    before = len(api.reports)
    # WHEN it is invoked twice
    first = api.invoke(load_event("api_predict_one"))
    api.invoke(load_event("api_predict_one"))
    cold, warm = api.wait_for_report(before + 1), api.wait_for_report(before + 2)
    # THEN both answer, and only a first-ever invoke reports an Init Duration
    assert first["statusCode"] == 200
    if before == 0:
        assert cold.init_ms is not None
    assert warm.init_ms is None


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_events_get_their_documented_status(api: EmulatedFunction, name: str) -> None:
    # GIVEN an API Gateway HTTP API v2 event from events/
    result = api.invoke(load_event(name))
    # THEN the function returns an HTTP API response with the expected status and a JSON body
    assert result["statusCode"] == EXPECTED_STATUS[name], result
    body = json.loads(result["body"])
    if result["statusCode"] >= 400:
        assert set(body["error"]) >= {"code", "message", "details"}
        assert "Traceback" not in result["body"]


def test_predictions_match_the_golden_set(api: EmulatedFunction) -> None:
    # GIVEN every golden input of the shipped model
    golden = json.loads((MODELS / "penguins" / "golden.json").read_text())
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [c["instance"] for c in golden["cases"]]})
    # WHEN scored by the built function
    result = api.invoke(event)
    predictions = json.loads(result["body"])["predictions"]
    # THEN each label and probability matches within the manifest's tolerance
    for case, row in zip(golden["cases"], predictions, strict=True):
        assert row["label"] == case["expected"]["label"]
        for label, p in case["expected"]["probabilities"].items():
            assert row["probabilities"][label] == pytest.approx(p, abs=1e-4)


def test_a_second_model_is_served_by_the_same_build(api_function: BuiltFunction) -> None:
    # GIVEN the same built function pointed at the diabetes regression model's directory
    with EmulatedFunction(
        api_function, extra_env={"ONNXLAMBDA_MODEL_DIR": str(MODELS / "diabetes")}
    ) as emulator:
        event = load_event("api_predict_one")
        event["body"] = json.dumps({"instances": golden_rows(MODELS / "diabetes")[:5]})
        # WHEN it is asked to predict
        result = emulator.invoke(event)
    # THEN it answers in the regression model's vocabulary, with no code change
    body = json.loads(result["body"])
    assert result["statusCode"] == 200, body
    assert body["model"]["name"] == "diabetes"
    assert all(isinstance(p["disease_progression"], float) for p in body["predictions"])


def test_a_tampered_model_never_serves(api_function: BuiltFunction, tmp_path: Path) -> None:
    # GIVEN a model directory whose model.onnx no longer matches the manifest's sha256
    model_dir = tmp_path / "model"
    shutil.copytree(MODELS / "penguins", model_dir)
    (model_dir / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes()[:-8])
    with EmulatedFunction(api_function, extra_env={"ONNXLAMBDA_MODEL_DIR": str(model_dir)}) as emulator:
        health = emulator.invoke(load_event("api_health"))
        predict = emulator.invoke(load_event("api_predict_one"))
        log = "\n".join(emulator.log)
    # THEN health says not ready, predictions are 503, and the log says exactly why
    assert health["statusCode"] == 503
    assert predict["statusCode"] == 503
    assert json.loads(predict["body"])["error"]["code"] == "model_not_ready"
    assert "model failed to load" in log
    assert "sha256" in log


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_local_http_front_serves_plain_http(build_dir: Path) -> None:
    # GIVEN the local HTTP front over the built function (what `make serve` runs)
    with serving(build_dir) as (server, _front):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        row = golden_rows(MODELS / "penguins")[0]
        # WHEN plain HTTP requests arrive
        ok = http("POST", f"{base}/predict", json.dumps({"instances": [row]}).encode())
        bad = http("POST", f"{base}/predict", b'{"instances": [{"island": "Atlantis"}]}')
        big = http("POST", f"{base}/predict", b" " * (1_048_576 + 1))
        health = http("GET", f"{base}/health")
        missing = http("GET", f"{base}/no-such-route")
    # THEN they are answered as API Gateway and the function would answer them
    assert ok[0] == 200
    assert ok[1]["predictions"][0]["label"] == "Adelie"
    assert bad[0] == 422
    assert big[0] == 413
    assert health == (200, health[1])
    assert health[1]["status"] == "ready"
    assert missing[0] == 404
    assert missing[1]["error"]["code"] == "not_found"  # the function's own error body
