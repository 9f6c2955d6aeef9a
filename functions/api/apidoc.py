"""How a route documents itself, on its own decorator (routes are declared once: there).

    @app.post("/predict", summary=..., responses=answers("PredictResponse", 400, 413, 422, 503),
              openapi_extensions=request_body("PredictRequest"))

`onnxlambda openapi` reads these from the resolver and completes the document with the schemas
each model's manifest defines (cli/onnxlambda_cli/openapi/model_schemas.py). 500 is documented on
every route: a bug is answered with the error body and a request id, never a stack trace.
"""

from typing import Any, Final

SCHEMAS: Final = "#/components/schemas/"
REQUEST_BODY: Final = "x-onnxlambda-request-body"
ERRORS: Final = {
    400: "Malformed request: body empty, not JSON, or not the documented envelope",
    404: "Unknown model or version",
    413: "Body over ONNXLAMBDA_MAX_BODY_BYTES or more rows than ONNXLAMBDA_MAX_ROWS",
    422: "Values break the model's contract (every problem listed)",
    500: "A bug: logged with its stack; the caller gets the request id",
    503: "The model failed to load in this execution environment",
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": SCHEMAS + schema}}}


def answers(
    schema: str,
    *errors: int,
    status: int = 200,
    error_schema: str = "Error",
    error_schemas: dict[int, str] | None = None,
) -> dict[int, Any]:
    """The success answer (`schema`) and the error statuses a route can give, with their bodies."""
    documented: dict[int, Any] = {status: {"description": "OK", "content": _json(schema)}}
    for code in (*errors, 500):
        body = (error_schemas or {}).get(code, error_schema)
        documented[code] = {"description": ERRORS[code], "content": _json(body)}
    return documented


def request_body(schema: str) -> dict[str, str]:
    """The request body's schema, as an OpenAPI extension the document builder turns into it."""
    return {REQUEST_BODY: schema}
