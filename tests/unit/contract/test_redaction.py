"""Configured sensitive fields: their values never reach logs or error bodies."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import app
from onnxlambda.contract.errors import FieldError, ServingError
from onnxlambda.contract.redaction import REDACTED, Redactor, parse_fields
from onnxlambda.serving import service as service_module
from onnxlambda.serving.service import Service, get_service
from onnxlambda.settings import Settings
from tests.conftest import FakeLambdaContext, golden_rows, load_event

SECRET_CATEGORY = "Atlantis-7731-SECRET"
SECRET_NUMBER = 987654.321


def test_the_field_list_is_parsed_leniently() -> None:
    assert parse_fields(" island, body_mass_g,,") == {"island", "body_mass_g"}
    assert parse_fields("") == frozenset()
    assert parse_fields(None) == frozenset()


def test_settings_read_redact_fields_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXLAMBDA_REDACT_FIELDS", "island,sex")
    assert Settings.from_env().redact_fields == {"island", "sex"}
    monkeypatch.delenv("ONNXLAMBDA_REDACT_FIELDS")
    assert Settings.from_env().redact_fields == frozenset()


def test_only_messages_about_redacted_fields_change() -> None:
    # GIVEN an error about a redacted field and one about a plain field
    err = ServingError(
        "validation_failed",
        "2 invalid value(s)",
        [
            FieldError(0, "island", "unknown_category", f"{SECRET_CATEGORY!r} is not one of: Biscoe"),
            FieldError(0, "bill_length_mm", "out_of_range", "'bill_length_mm'=900 is outside [30, 60]"),
        ],
        status=422,
    )
    # WHEN redacted for "island"
    out = Redactor.of(["island"]).error(err)
    # THEN status, code, rows and fields are kept, and only the island message loses its value
    assert (out.status, out.code, [d.field for d in out.details]) == (
        422,
        "validation_failed",
        ["island", "bill_length_mm"],
    )
    assert SECRET_CATEGORY not in json.dumps(out.body())
    assert out.details[0].code == "unknown_category"
    assert out.details[1] == err.details[1]
    # AND with nothing configured the error is returned untouched
    assert Redactor().error(err) is err


def test_rows_for_capture_hide_values_but_keep_nulls() -> None:
    row = {"island": SECRET_CATEGORY, "sex": None, "bill_length_mm": 40.1}
    assert Redactor.of(["island", "sex"]).row(row) == {
        "island": REDACTED,
        "sex": None,
        "bill_length_mm": 40.1,
    }


@pytest.fixture
def redacting_service() -> Iterator[Service]:
    """This execution environment's service, rebuilt with island and body_mass_g redacted."""
    loaded = get_service()
    settings = dataclasses.replace(loaded.settings, redact_fields=frozenset({"island", "body_mass_g"}))
    service_module._service = Service(loaded.runtime, settings)
    try:
        yield service_module._service
    finally:
        service_module._service = loaded


def bad_event() -> dict[str, Any]:
    row = dict(golden_rows(service_module.get_service().runtime.model_dir)[0])
    row["island"] = SECRET_CATEGORY  # unknown_category: its message would quote the value
    row["body_mass_g"] = SECRET_NUMBER  # out_of_range: its message would quote the value
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [row]})
    return event


def test_a_422_on_redacted_fields_never_shows_their_values(
    redacting_service: Service,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the function's log handler writing somewhere we can read, at DEBUG
    handler = app.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    level = app.logger.log_level
    app.logger.setLevel("DEBUG")
    try:
        # WHEN a request whose redacted fields are both invalid is handled
        response = app.lambda_handler(bad_event(), lambda_context)
    finally:
        handler.setStream(previous)
        app.logger.setLevel(level)
    logged = stream.getvalue() + capsys.readouterr().out  # log lines + EMF metrics on stdout
    body = json.loads(response["body"])
    # THEN the request is refused with both problems named by row, field and code
    assert response["statusCode"] == 422
    assert {(d["row"], d["field"], d["code"]) for d in body["error"]["details"]} == {
        (0, "island", "unknown_category"),
        (0, "body_mass_g", "out_of_range"),
    }
    # AND neither value appears in the logs or in the error body
    assert "request refused" in logged
    for text in (logged, response["body"]):
        assert SECRET_CATEGORY not in text
        assert str(SECRET_NUMBER) not in text
        assert "987654" not in text


def test_a_v2_infer_error_on_redacted_fields_never_shows_their_values(
    redacting_service: Service,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a V2 inference request whose redacted tensors carry invalid values
    event = load_event("v2_infer")
    request = json.loads(event["body"])
    for tensor in request["inputs"]:
        if tensor["name"] == "island":
            tensor["data"][0] = SECRET_CATEGORY
        if tensor["name"] == "body_mass_g":
            tensor["data"][1] = SECRET_NUMBER
    event["body"] = json.dumps(request)
    # WHEN the handler answers it
    response = app.lambda_handler(event, lambda_context)
    logged = capsys.readouterr().out
    # THEN it is refused in the protocol's shape, naming the fields but not their values
    assert response["statusCode"] == 422
    message = json.loads(response["body"])["error"]
    assert "island" in message
    assert "body_mass_g" in message
    for text in (logged, response["body"]):
        assert SECRET_CATEGORY not in text
        assert "987654" not in text


def test_without_configuration_the_caller_sees_the_value(lambda_context: FakeLambdaContext) -> None:
    # GIVEN no redaction configured (the default) THEN the error names the bad value, as before
    response = app.lambda_handler(bad_event(), lambda_context)
    assert response["statusCode"] == 422
    assert SECRET_CATEGORY in response["body"]


def _failing_runtime_logs(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, redact: frozenset[str]
) -> tuple[int, str]:
    """Handle a valid request whose model run raises an error quoting a request value."""

    def boom(*_: object) -> None:
        raise ValueError(f"cannot score island={SECRET_CATEGORY}")

    monkeypatch.setattr(get_service().runtime, "run", boom)
    monkeypatch.setattr(app, "settings", dataclasses.replace(app.settings, redact_fields=redact))
    handler = app.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        response = app.lambda_handler(load_event("api_predict_one"), lambda_context)
    finally:
        handler.setStream(previous)
    return response["statusCode"], stream.getvalue()


def test_an_unexpected_error_logs_frames_but_not_its_message_when_fields_are_redacted(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN sensitive fields configured and a failure whose message quotes a request value
    status, logged = _failing_runtime_logs(monkeypatch, lambda_context, frozenset({"island"}))
    # THEN the caller gets the 500, and the log keeps where it happened and what kind of error
    assert status == 500
    [line] = [json.loads(x) for x in logged.splitlines() if "unhandled error" in x]
    assert "ValueError" in line["exception"]
    assert "boom" in line["exception"]  # the frame where it was raised
    # AND not the message with the value
    assert SECRET_CATEGORY not in logged


def test_without_redaction_an_unexpected_error_is_logged_in_full(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    status, logged = _failing_runtime_logs(monkeypatch, lambda_context, frozenset())
    assert status == 500
    assert f"cannot score island={SECRET_CATEGORY}" in logged
