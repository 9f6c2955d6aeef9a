"""POST /feedback's request body, checked by hand like /predict's (no pydantic model at import).

A pydantic request model here made the API function run Powertools' OpenAPI validation
middleware on every request of every route (enable_validation) for the sake of one small body;
`parse_feedback` gives the same answers and error details that model and app.py's mapping of its
errors gave (tests/unit/functions/test_feedback_request.py holds both to it). The documented
schema is `onnxlambda_cli.openapi.model_schemas.feedback_schemas` (same pattern).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from onnxlambda.contract.errors import FieldError, ServingError, malformed

INFERENCE_ID_PATTERN: Final = "^[A-Za-z0-9._:-]{1,200}$"
_INFERENCE_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,200}")  # fullmatch: no trailing newline
# The envelope message and detail texts the pydantic model's errors were mapped to (app.py).
ENVELOPE_MESSAGE: Final = (
    'request body must be {"inference_id": "<from a prediction>", "actual": <the true label or value>}'
)
_REQUIRED: Final = "Field required"
_NOT_AN_OBJECT: Final = "Input should be a valid dictionary or object to extract fields from"


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    """The ground truth for one prediction: the inference_id a /predict response carried, and
    the true label (classifier) or value (regressor), checked against the manifest later."""

    inference_id: str
    actual: Any


def parse_feedback(text: str | None) -> FeedbackRequest:
    """The request from a decoded JSON body, else a 400 naming every wrong field."""
    if not text:
        raise _envelope([FieldError(None, "body", "missing", _REQUIRED)])
    try:
        body = json.loads(text)  # the standard library, as Powertools parsed it: NaN is accepted
    except json.JSONDecodeError:
        raise malformed("body is not valid JSON") from None
    if body is None:
        raise _envelope([FieldError(None, "body", "missing", _REQUIRED)])
    if not isinstance(body, dict):
        raise _envelope([FieldError(None, "body", "wrong_type", _NOT_AN_OBJECT)])
    details: list[FieldError] = []
    inference_id = body.get("inference_id")
    if "inference_id" not in body:
        details.append(FieldError(None, "inference_id", "missing", _REQUIRED))
    elif not isinstance(inference_id, str):
        details.append(FieldError(None, "inference_id", "wrong_type", "Input should be a valid string"))
    elif not _INFERENCE_ID.fullmatch(inference_id):
        message = f"String should match pattern '{INFERENCE_ID_PATTERN}'"
        details.append(FieldError(None, "inference_id", "string_pattern_mismatch", message))
    if "actual" not in body:
        details.append(FieldError(None, "actual", "missing", _REQUIRED))
    if details or not isinstance(inference_id, str):
        raise _envelope(details)
    return FeedbackRequest(inference_id, body["actual"])


def _envelope(details: list[FieldError]) -> ServingError:
    return malformed(ENVELOPE_MESSAGE, details)
