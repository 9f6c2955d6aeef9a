"""The API handler answers every request, good or bad, with the documented status and body."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from functions.api import app
from onnxlambda.serving.service import get_service
from tests.conftest import FakeLambdaContext, load_event


def call(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def error_details(body: dict[str, Any]) -> list[tuple[Any, str, str]]:
    return [(d["row"], d["field"], d["code"]) for d in body["error"]["details"]]


def test_predict_one_row(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the API Gateway event for one valid row
    status, body = call(load_event("api_predict_one"), lambda_context)
    # THEN a 200 with the label, probabilities, model identity and an inference id per row
    assert status == 200
    assert body["model"]["name"] == "penguins"
    assert body["model"]["sha256"] == get_service().manifest.sha256
    [row] = body["predictions"]
    assert row["label"] == "Adelie"
    assert set(row["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert row["inference_id"] == "api_predict_one-0"


def test_predict_many_rows_keeps_order(lambda_context: FakeLambdaContext) -> None:
    event = load_event("api_predict_batch")
    status, body = call(event, lambda_context)
    assert status == 200
    assert [p["inference_id"] for p in body["predictions"]] == [f"api_predict_batch-{i}" for i in range(10)]


def test_nullable_features_may_be_null(lambda_context: FakeLambdaContext) -> None:
    status, body = call(load_event("api_predict_null_sex"), lambda_context)
    assert status == 200
    assert body["predictions"][0]["label"] in {"Adelie", "Chinstrap", "Gentoo"}


@pytest.mark.parametrize(
    ("event_name", "status", "code", "expected_details"),
    [
        ("api_bad_json", 400, "malformed_request", []),
        ("api_bad_shape", 400, "malformed_request", [(None, "instances", "missing")]),
        ("api_missing_feature", 422, "validation_failed", [(0, "bill_length_mm", "missing_feature")]),
        ("api_extra_feature", 422, "validation_failed", [(0, "colour", "unknown_feature")]),
        ("api_unknown_category", 422, "validation_failed", [(1, "island", "unknown_category")]),
        ("api_out_of_range", 422, "validation_failed", [(0, "body_mass_g", "out_of_range")]),
        ("api_wrong_type", 422, "validation_failed", [(0, "flipper_length_mm", "wrong_type")]),
        ("api_null_not_allowed", 422, "validation_failed", [(0, "island", "null_not_allowed")]),
        (
            "api_not_finite",
            422,
            "validation_failed",
            [(0, "bill_length_mm", "not_finite"), (0, "flipper_length_mm", "not_finite")],
        ),
        ("api_empty", 422, "validation_failed", [(None, "instances", "empty")]),
        ("api_not_found", 404, "not_found", []),
    ],
)
def test_bad_requests_get_exact_status_and_structured_error(
    lambda_context: FakeLambdaContext,
    event_name: str,
    status: int,
    code: str,
    expected_details: list[tuple[Any, str, str]],
) -> None:
    # GIVEN a bad request from events/
    got_status, body = call(load_event(event_name), lambda_context)
    # THEN the status, error code and field-level details are exactly as documented
    assert got_status == status
    assert body["error"]["code"] == code
    assert error_details(body) == expected_details
    assert "Traceback" not in json.dumps(body)


def test_rows_that_are_not_objects_are_named(lambda_context: FakeLambdaContext) -> None:
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [1, {"a": 1}]})
    status, body = call(event, lambda_context)
    assert status == 422
    assert error_details(body)[0] == (0, "instances", "wrong_type")


def test_oversized_body_is_413_before_parsing(lambda_context: FakeLambdaContext) -> None:
    # GIVEN a body over ONNXLAMBDA_MAX_BODY_BYTES (1 MiB by default) that is not even JSON
    event = load_event("api_predict_one")
    event["body"] = "x" * (app.settings.max_body_bytes + 1)
    status, body = call(event, lambda_context)
    # THEN it is refused by size alone
    assert (status, body["error"]["code"]) == (413, "body_too_large")


def test_too_many_rows_is_413(lambda_context: FakeLambdaContext) -> None:
    event = load_event("api_predict_one")
    row = json.loads(event["body"])["instances"][0]
    event["body"] = json.dumps({"instances": [row] * (app.settings.max_rows + 1)})
    status, body = call(event, lambda_context)
    assert (status, body["error"]["code"]) == (413, "too_many_rows")


def test_health_and_model_routes(lambda_context: FakeLambdaContext) -> None:
    status, body = call(load_event("api_health"), lambda_context)
    assert (status, body["status"]) == (200, "ready")
    status, body = call(load_event("api_model"), lambda_context)
    assert status == 200
    assert [f["name"] for f in body["features"]] == get_service().manifest.feature_names
    assert "baselines" not in body


def test_unexpected_failure_is_500_without_a_trace(
    lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a model runtime that blows up
    def boom(*_: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(get_service().runtime, "run", boom)
    # WHEN a valid request arrives
    status, body = call(load_event("api_predict_one"), lambda_context)
    # THEN the caller gets a 500 with the request id and nothing of the internals
    assert status == 500
    assert body["error"] == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": "api_predict_one",
        "details": [],
        "truncated": False,
    }


def test_log_lines_carry_model_identity_and_correlation_id(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the function's log handler writing somewhere we can read
    handler = app.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        # WHEN a refused request is handled (it logs one line)
        call(load_event("api_unknown_category"), lambda_context)
    finally:
        handler.setStream(previous)
    # THEN the structured log line names the model version, its sha256 and the request
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = next(line for line in lines if line.get("message") == "request refused")
    assert refused["model_version"] == get_service().manifest.version
    assert refused["model_sha256"] == get_service().manifest.sha256
    assert refused["correlation_id"] == "api_unknown_category"


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("TRACE", "/predict", "POST"), ("DELETE", "/health", "GET")]
)
def test_a_served_path_asked_with_another_method_is_405_with_allow(
    lambda_context: FakeLambdaContext, method: str, path: str, allowed: str
) -> None:
    # GIVEN a path the handler serves, asked with a method it does not serve (API Gateway's one
    # greedy route hands every method to the function)
    event = load_event("api_health")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /{proxy+}"
    response = app.lambda_handler(event, lambda_context)
    # THEN 405 with the methods that are served, in the error body of every other refusal
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == allowed
    body = json.loads(response["body"])["error"]
    assert body["code"] == "method_not_allowed"
    assert body["request_id"]
