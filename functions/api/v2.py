"""Open Inference Protocol (KServe V2) REST routes: transport only, the protocol lives in
onnxlambda.codecs.v2 and inference in the data plane. Included by app.py with
`app.include_router(router)`.

Every answer of these routes, errors included, is the protocol's shape: `{"error": "..."}` with
the status of the ServingError (400 structure, 404 unknown model or version, 413, 422 values, 503).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from onnxlambda.codecs import fastjson
from onnxlambda.contract.errors import ServingError, internal
from onnxlambda.serving.service import get_service

if __package__:  # imported as functions.api.v2 (tests, tools)
    from functions.api import apidoc, httpevent
    from functions.api.observe import observer
else:  # on Lambda the function's directory is the root
    import apidoc  # type: ignore[import-not-found,no-redef]
    import httpevent  # type: ignore[import-not-found,no-redef]
    from observe import observer  # type: ignore[import-not-found,no-redef]

if TYPE_CHECKING:
    from onnxlambda.codecs.v2 import V2Model

# onnxlambda.codecs.v2 is imported on the first V2 request, not at cold start (make bench).

logger = Logger(child=True)
router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router() is untyped
TAGS = ["v2"]
HEADER_LENGTH = "Inference-Header-Content-Length"


def answers(schema: str, *errors: int) -> dict[int, Any]:
    """Every V2 answer, errors included, is in the protocol's own shape (V2Error)."""
    return apidoc.answers(schema, *errors, error_schema="V2Error")


INFER_ANSWERS = answers("V2InferResponse", 400, 404, 413, 422, 503)
INFER_BODY = apidoc.request_body("V2InferRequest")


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=fastjson.dumps(body))


def _answer(route: Callable[[], dict[str, Any]]) -> Response[str]:
    """Answer the route's dict as 200 JSON and every failure in the protocol's error format."""
    from onnxlambda.codecs.v2 import error_body

    try:
        return _json(200, route())
    except ServingError as err:
        error = err
        observer.refused(err)
    except Exception:  # a bug: logged with its stack, answered in the protocol's shape
        logger.exception("unhandled error")
        observer.internal_error()
        error = internal(f"internal error (request id {_request_id()})")
    logger.info("request refused", extra={"status": error.status, "error_code": error.code})
    return _json(error.status, error_body(error))


def _request_id() -> str:
    return httpevent.request_id(router.current_event.raw_event)


def _model(model_name: str, model_version: str | None = None) -> V2Model:
    from onnxlambda.codecs.v2 import v2_model

    model = v2_model(get_service())
    model.check(model_name, model_version)
    return model


def _infer(model_name: str, model_version: str | None) -> dict[str, Any]:
    service = get_service()
    model = _model(model_name, model_version)
    event = router.current_event
    raw = httpevent.raw_body(event.body, bool(event.is_base64_encoded), service.settings.max_body_bytes)
    return model.infer(raw, event.headers.get(HEADER_LENGTH), request_id=_request_id(), observer=observer)


@router.get("/v2", summary="Server metadata", tags=TAGS, responses=answers("V2ServerMetadata"))
def metadata_server() -> Response[str]:
    from onnxlambda.codecs.v2 import server_metadata

    return _answer(server_metadata)


@router.get("/v2/health/live", summary="Server liveness", tags=TAGS, responses=answers("V2Live"))
def live() -> Response[str]:
    return _answer(lambda: {"live": True})


@router.get(
    "/v2/health/ready",
    summary="Server readiness (503 when the model failed to load)",
    tags=TAGS,
    responses=answers("V2Ready", 503),
)
def ready() -> Response[str]:
    return _answer(lambda: {"ready": get_service() is not None})


@router.get(
    "/v2/models/<model_name>",
    summary="Model metadata",
    tags=TAGS,
    responses=answers("V2ModelMetadata", 404, 503),
)
def model_metadata(model_name: str) -> Response[str]:
    return _answer(lambda: _model(model_name).metadata())


@router.get(
    "/v2/models/<model_name>/versions/<model_version>",
    summary="Model version metadata",
    tags=TAGS,
    responses=answers("V2ModelMetadata", 404, 503),
)
def model_version_metadata(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _model(model_name, model_version).metadata())


@router.get(
    "/v2/models/<model_name>/ready",
    summary="Model readiness",
    tags=TAGS,
    responses=answers("V2ModelReady", 404, 503),
)
def model_ready(model_name: str) -> Response[str]:
    return _answer(lambda: _model(model_name).ready())


@router.get(
    "/v2/models/<model_name>/versions/<model_version>/ready",
    summary="Model version readiness",
    tags=TAGS,
    responses=answers("V2ModelReady", 404, 503),
)
def model_version_ready(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _model(model_name, model_version).ready())


@router.post(
    "/v2/models/<model_name>/infer",
    summary="Inference",
    tags=TAGS,
    responses=INFER_ANSWERS,
    openapi_extensions=INFER_BODY,
)
def infer(model_name: str) -> Response[str]:
    return _answer(lambda: _infer(model_name, None))


@router.post(
    "/v2/models/<model_name>/versions/<model_version>/infer",
    summary="Inference on a version",
    tags=TAGS,
    responses=INFER_ANSWERS,
    openapi_extensions=INFER_BODY,
)
def infer_version(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _infer(model_name, model_version))
