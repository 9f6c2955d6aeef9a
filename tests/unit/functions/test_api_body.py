"""POST /predict reads the raw body itself (no pydantic envelope model): every encoding is covered."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from functions.api import app
from tests.conftest import FakeLambdaContext, load_event


def _call(body: str, *, b64: bool, context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    event = load_event("api_predict_one")
    event["body"], event["isBase64Encoded"] = body, b64
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_base64_encoded_body_is_decoded(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the one-row request as API Gateway sends a binary body: base64
    raw = load_event("api_predict_one")["body"].encode()
    status, body = _call(base64.b64encode(raw).decode(), b64=True, context=lambda_context)
    # THEN it is scored like the plain one
    assert status == 200
    assert body["predictions"][0]["label"] == "Adelie"


@pytest.mark.parametrize(
    ("body", "b64"),
    [
        ("not base64 at all!", True),
        (base64.b64encode(b'{"instances": [\xff\xfe]}').decode(), True),  # not UTF-8 inside
        ("", False),
        ("null", False),
        ('{"instances": {"island": "Biscoe"}}', False),
    ],
)
def test_undecodable_or_misshapen_bodies_are_400(
    lambda_context: FakeLambdaContext, body: str, b64: bool
) -> None:
    # GIVEN a body that is not base64, not UTF-8, empty, or not {"instances": [...]}
    status, answer = _call(body, b64=b64, context=lambda_context)
    # THEN the caller gets the documented 400, never a 500
    assert (status, answer["error"]["code"]) == (400, "malformed_request")
