"""The project's own JSON protocol: POST /predict.

Request  {"instances": [{<feature>: <value>, ...}, ...]}       (values as JSON: number, string, null)
Answer   {"model": {name, version, sha256, function_version},
          "predictions": [{"label", "probabilities"} | {<output name>: value}, + "inference_id"]}
Error    {"error": {"code", "message", "details": [{row, field, code, message}], "truncated",
                    "request_id"}}

The body is decoded here and checked only as an envelope; the rows are validated by the data
plane, column-wise, exactly as every other protocol's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from onnxlambda.codecs import fastjson
from onnxlambda.contract.errors import FieldError, ServingError, malformed, too_large
from onnxlambda.serving.dataplane import Decoded, Inference
from onnxlambda.serving.validation import json_type


def read_json(raw: str | bytes | None, max_body_bytes: int) -> object:
    """Decode a JSON request body, refusing oversized ones before any parsing work."""
    if not raw:
        raise malformed("request body is empty; expected a JSON object")
    if len(raw) > max_body_bytes:
        raise too_large("body_too_large", f"body is {len(raw)} bytes; at most {max_body_bytes} allowed")
    try:
        return fastjson.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise malformed(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise malformed("body is not valid JSON: nested too deeply") from exc


def decode(body: object) -> Decoded:
    """The row list of a `{"instances": [...]}` envelope, or a 400."""
    if not isinstance(body, dict):
        raise malformed(f"request body must be a JSON object, got {json_type(body)}")
    if "instances" not in body:
        raise malformed(
            "request body must have an 'instances' array",
            [FieldError(None, "instances", "missing", "'instances' is required")],
        )
    instances = body["instances"]
    if not isinstance(instances, list):
        raise malformed(
            f"'instances' must be an array of objects, got {json_type(instances)}",
            [FieldError(None, "instances", "wrong_type", "expected an array of row objects")],
        )
    return Decoded(protocol="predict", rows=instances)


def encode(inference: Inference, model_ref: Mapping[str, str]) -> dict[str, Any]:
    rows = inference.answers()
    for i, row in enumerate(rows):
        row["inference_id"] = inference.inference_id(i)
    return {"model": dict(model_ref), "predictions": rows}


def error_body(err: ServingError, request_id: str) -> dict[str, Any]:
    body = err.body()
    body["error"]["request_id"] = request_id
    return body


__all__ = ["decode", "encode", "error_body", "read_json"]
