"""Open Inference Protocol (KServe V2) REST routes: transport only, the protocol lives in
onnxlambda.codecs.v2. Included by app.py with `app.include_router(router)`.

Every answer of these routes, errors included, is the protocol's shape: `{"error": "..."}` with
the status the core chose (400 structure, 404 unknown model or version, 413, 422 values, 503).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from onnxlambda.contract.errors import ServingError
from onnxlambda.serving.service import get_service

if TYPE_CHECKING:
    from onnxlambda.codecs.v2 import V2Model

# onnxlambda.codecs.v2 is imported on the first V2 request, not at cold start: the layer ships no .pyc,
# so every module imported at init is compiled there (~13 ms for v2.py on the dev machine).

logger = Logger(child=True)
metrics = Metrics()
router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router() is untyped
TAGS = ["v2"]
HEADER_LENGTH = "Inference-Header-Content-Length"


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def _answer(route: Callable[[], dict[str, Any]]) -> Response[str]:
    """Answer the route's dict as 200 JSON and every failure in the protocol's error format."""
    from onnxlambda.codecs.v2 import ProtocolError

    try:
        return _json(200, route())
    except ServingError as err:  # model not loaded (503), or a limit (413)
        error = ProtocolError.from_serving_error(err)
    except ProtocolError as err:
        error = err
    except Exception:  # a bug: logged with its stack, answered in the protocol's shape
        logger.exception("unhandled error")
        metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
        error = ProtocolError(500, f"internal error (request id {_request_id()})")
    metrics.add_metric(name=f"Rejected_v2_{error.status}", unit=MetricUnit.Count, value=1)
    logger.info("request refused", extra={"status": error.status, "error": error.message})
    return _json(error.status, error.body())


def _request_id() -> str:
    try:
        return str((router.current_event.get("requestContext") or {}).get("requestId", "unknown"))
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def _model(model_name: str, model_version: str | None = None) -> V2Model:
    from onnxlambda.codecs.v2 import v2_model

    model = v2_model(get_service())
    model.check(model_name, model_version)
    return model


def _raw_body() -> bytes:
    event = router.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            from onnxlambda.codecs.v2 import ProtocolError

            raise ProtocolError(400, "body is not valid base64") from None
    return body.encode("utf-8")


def _infer(model_name: str, model_version: str | None) -> dict[str, Any]:
    model = _model(model_name, model_version)
    result = model.infer(_raw_body(), router.current_event.headers.get(HEADER_LENGTH))
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=result["outputs"][0]["shape"][0])
    return result


@router.get("/v2", summary="Server metadata", tags=TAGS)
def metadata_server() -> Response[str]:
    from onnxlambda.codecs.v2 import server_metadata

    return _answer(server_metadata)


@router.get("/v2/health/live", summary="Server liveness", tags=TAGS)
def live() -> Response[str]:
    return _answer(lambda: {"live": True})


@router.get("/v2/health/ready", summary="Server readiness (503 when the model failed to load)", tags=TAGS)
def ready() -> Response[str]:
    return _answer(lambda: {"ready": get_service() is not None})


@router.get("/v2/models/<model_name>", summary="Model metadata", tags=TAGS)
def model_metadata(model_name: str) -> Response[str]:
    return _answer(lambda: _model(model_name).metadata())


@router.get("/v2/models/<model_name>/versions/<model_version>", summary="Model version metadata", tags=TAGS)
def model_version_metadata(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _model(model_name, model_version).metadata())


@router.get("/v2/models/<model_name>/ready", summary="Model readiness", tags=TAGS)
def model_ready(model_name: str) -> Response[str]:
    return _answer(lambda: _model(model_name).ready())


@router.get(
    "/v2/models/<model_name>/versions/<model_version>/ready", summary="Model version readiness", tags=TAGS
)
def model_version_ready(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _model(model_name, model_version).ready())


@router.post("/v2/models/<model_name>/infer", summary="Inference", tags=TAGS)
def infer(model_name: str) -> Response[str]:
    return _answer(lambda: _infer(model_name, None))


@router.post(
    "/v2/models/<model_name>/versions/<model_version>/infer", summary="Inference on a version", tags=TAGS
)
def infer_version(model_name: str, model_version: str) -> Response[str]:
    return _answer(lambda: _infer(model_name, model_version))
