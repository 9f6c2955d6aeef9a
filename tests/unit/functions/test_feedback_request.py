"""POST /feedback's body, checked by hand (onnxlambda.codecs.feedback) with the answers the pydantic
request model gave before it: same status, code, envelope message and per-field details."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from functions.api import app
from onnxlambda.codecs.feedback import ENVELOPE_MESSAGE, INFERENCE_ID_PATTERN, FeedbackRequest, parse_feedback
from onnxlambda.contract.errors import ServingError
from tests.conftest import FakeLambdaContext, load_event

PATTERN_MESSAGE = f"String should match pattern '{INFERENCE_ID_PATTERN}'"
MISSING = "Field required"


@pytest.mark.parametrize(
    ("text", "details"),
    [
        (None, [("body", "missing", MISSING)]),
        ("", [("body", "missing", MISSING)]),
        ("null", [("body", "missing", MISSING)]),
        (
            "[1]",
            [("body", "wrong_type", "Input should be a valid dictionary or object to extract fields from")],
        ),
        (
            '"s"',
            [("body", "wrong_type", "Input should be a valid dictionary or object to extract fields from")],
        ),
        ("{}", [("inference_id", "missing", MISSING), ("actual", "missing", MISSING)]),
        ('{"actual": "Adelie"}', [("inference_id", "missing", MISSING)]),
        ('{"inference_id": "x-0"}', [("actual", "missing", MISSING)]),
        (
            '{"inference_id": 5, "actual": 1}',
            [("inference_id", "wrong_type", "Input should be a valid string")],
        ),
        (
            '{"inference_id": null}',
            [
                ("inference_id", "wrong_type", "Input should be a valid string"),
                ("actual", "missing", MISSING),
            ],
        ),
        (
            '{"inference_id": "bad id", "actual": 1}',
            [("inference_id", "string_pattern_mismatch", PATTERN_MESSAGE)],
        ),
        (
            '{"inference_id": "x-0\\n", "actual": 1}',
            [("inference_id", "string_pattern_mismatch", PATTERN_MESSAGE)],
        ),
        ('{"inference_id": "", "actual": 1}', [("inference_id", "string_pattern_mismatch", PATTERN_MESSAGE)]),
    ],
)
def test_a_wrong_body_is_a_400_naming_every_wrong_field(
    text: str | None, details: list[tuple[str, str, str]]
) -> None:
    # GIVEN a body that is not a feedback object WHEN it is parsed
    with pytest.raises(ServingError) as caught:
        parse_feedback(text)
    # THEN 400 malformed_request, with the envelope message and one detail per wrong field
    err = caught.value
    assert (err.status, err.code, err.message) == (400, "malformed_request", ENVELOPE_MESSAGE)
    assert [(d.row, d.field, d.code, d.message) for d in err.details] == [(None, *d) for d in details]


def test_invalid_json_is_a_400_without_details() -> None:
    with pytest.raises(ServingError) as caught:
        parse_feedback('{"inference_id": "x-0", "actual": 1} x')
    assert (caught.value.status, caught.value.message, caught.value.details) == (
        400,
        "body is not valid JSON",
        [],
    )


def test_a_good_body_keeps_any_actual_and_ignores_extra_fields() -> None:
    # GIVEN valid ids with an actual of any JSON type (the manifest checks it later), and extras
    assert parse_feedback('{"inference_id": "a.b:c-1_2", "actual": "Adelie", "x": 1}') == FeedbackRequest(
        "a.b:c-1_2", "Adelie"
    )
    assert parse_feedback('{"inference_id": "x", "actual": null}') == FeedbackRequest("x", None)
    assert parse_feedback('{"inference_id": "i", "inference_id": "j", "actual": 2.5}').inference_id == "j"


class _PydanticReference(BaseModel):
    """The request model /feedback used before: its pattern is the contract's."""

    inference_id: str = Field(pattern=INFERENCE_ID_PATTERN)
    actual: Any


@given(st.one_of(st.text(max_size=210), st.from_regex(r"[A-Za-z0-9._:-]{195,205}", fullmatch=True)))
def test_inference_ids_are_accepted_exactly_when_the_pydantic_pattern_accepts_them(inference_id: str) -> None:
    text = json.dumps({"inference_id": inference_id, "actual": 1})
    try:
        _PydanticReference.model_validate_json(text)
        expected = True
    except ValidationError:
        expected = False
    try:
        parse_feedback(text)
        accepted = True
    except ServingError:
        accepted = False
    assert accepted == expected


def _feedback_event(body: str, *, b64: bool = False, content_type: str | None = None) -> dict[str, Any]:
    event = load_event("api_feedback")
    event["body"] = body
    event["isBase64Encoded"] = b64
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    return event


def test_the_route_answers_bad_base64_and_bad_utf8_with_400(lambda_context: FakeLambdaContext) -> None:
    # GIVEN base64 that does not decode, and base64 of bytes that are not UTF-8
    for event, message in [
        (_feedback_event("!!notb64", b64=True), "body is not valid base64"),
        (_feedback_event(base64.b64encode(b"\xff\xfe").decode(), b64=True), "body is not UTF-8 encoded JSON"),
    ]:
        # WHEN each is posted THEN 400 malformed_request (a bad base64 body was a 500 before)
        response = app.lambda_handler(event, lambda_context)
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["error"]["message"] == message


def test_the_route_reads_json_whatever_the_content_type(lambda_context: FakeLambdaContext) -> None:
    # GIVEN a valid feedback body sent as text/plain (like /predict, the body is JSON regardless)
    event = _feedback_event('{"inference_id": "x-0", "actual": "Adelie"}', content_type="text/plain")
    # WHEN posted THEN accepted (a 500 before: Powertools refused the content type)
    assert app.lambda_handler(event, lambda_context)["statusCode"] == 202


def test_an_oversized_feedback_body_is_413_before_it_is_read(lambda_context: FakeLambdaContext) -> None:
    # GIVEN feedback padded past ONNXLAMBDA_MAX_BODY_BYTES (the route documents 413, as /predict)
    event = load_event("api_feedback")
    event["body"] = event["body"] + " " * (1_048_576 + 1)
    response = app.lambda_handler(event, lambda_context)
    # THEN refused as too large, before any parsing
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"]["code"] == "body_too_large"
