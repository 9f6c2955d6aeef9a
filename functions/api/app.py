"""HTTP API function: API Gateway HTTP API (payload v2) -> onnxlambda core.

Transport only: routes, error rendering, logging, metrics and tracing. Every protocol's route
decodes its body with its codec (onnxlambda.codecs), hands it to the one data plane
(onnxlambda.serving.dataplane) and encodes the answer; errors are ServingErrors rendered once per
protocol (`_error` here for the project's own routes, v2.py's for the V2 routes).
"""

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda import settings as settings_catalogue
from onnxlambda.codecs import fastjson
from onnxlambda.codecs import predict as predict_codec
from onnxlambda.contract.errors import (
    ServingError,
    internal,
    malformed,
    method_not_allowed,
    not_found,
    not_ready,
)
from onnxlambda.contract.manifest import OPENAPI_FILE
from onnxlambda.contract.redaction import WithholdExceptionMessages
from onnxlambda.serving.service import Service, get_service, load_error
from onnxlambda.serving.tracing import make_tracer
from onnxlambda.settings import Settings

if __package__:  # imported as functions.api.app (tests, tools)
    from functions.api import httpevent
    from functions.api.apidoc import answers, request_body
    from functions.api.feedback import router as feedback_router
    from functions.api.observe import observer
    from functions.api.v2 import router as v2_router
else:  # on Lambda the function's directory is the root: sibling modules are top-level
    import httpevent  # type: ignore[import-not-found,no-redef]
    from apidoc import answers, request_body  # type: ignore[import-not-found,no-redef]
    from feedback import router as feedback_router  # type: ignore[import-not-found,no-redef]
    from observe import observer  # type: ignore[import-not-found,no-redef]
    from v2 import router as v2_router  # type: ignore[import-not-found,no-redef]

logger = Logger()
tracer = make_tracer()  # no X-Ray SDK import unless SDK tracing is on (cold start)
metrics = Metrics()
# No enable_validation: every route checks its own body in the core (/predict, /feedback, V2), so
# Powertools' OpenAPI validation middleware would only add work to each request (make bench).
app = APIGatewayHttpResolver()
app.include_router(v2_router)  # Open Inference Protocol (KServe V2): functions/api/v2.py
app.include_router(feedback_router)  # ground truth: functions/api/feedback.py
settings = Settings.from_env()
JSON = "application/json"
# With sensitive fields configured, logged exceptions keep their frames but not their messages.
logger.addFilter(WithholdExceptionMessages(lambda: bool(settings.redact_fields)))

# Load the model during init, once per execution environment. A failure is logged here and
# answered as 503 by every route, so a broken model never serves half a response.
try:
    _service = get_service(settings)
    logger.append_keys(**_service.log_keys())
    # Shadow challenger (issue 15): loaded here, once; it never changes a response.
    logger.info("shadow challenger", extra=observer.prepare(_service))
    # No model_version dimension: alarms name metrics exactly across model releases; the version
    # rides along as EMF metadata (functions/api/observe.py).
except ServingError as _exc:
    logger.error("model failed to load; every request will get 503", extra={"reason": load_error()})
logger.append_keys(function_version=settings_catalogue.get("AWS_LAMBDA_FUNCTION_VERSION"))


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    # orjson: ~10x json.dumps on a 1,000-row answer (onnxlambda.codecs.fastjson).
    return Response(status_code=status, content_type=JSON, body=fastjson.dumps(body), headers=headers)


def _error(err: ServingError) -> Response[str]:
    """The project's own error shape (onnxlambda.codecs.predict.error_body), counted and logged."""
    observer.refused(err)
    logger.info(
        "request refused", extra={"status": err.status, "error_code": err.code, "details": len(err.details)}
    )
    return _json(err.status, predict_codec.error_body(err, _request_id()))


def _request_id() -> str:
    return httpevent.request_id(app.current_event.raw_event)


def _raw_body() -> bytes:
    event = app.current_event
    return httpevent.raw_body(event.body, bool(event.is_base64_encoded), settings.max_body_bytes)


@app.post(
    "/predict",
    summary="Predict one or many rows",
    tags=["predict"],
    responses=answers("PredictResponse", 400, 413, 422, 503),
    openapi_extensions=request_body("PredictRequest"),
)
def predict() -> Response[str]:
    # `{"instances": [{feature: value, ...}, ...]}`. The codec parses the body once and checks the
    # envelope; the data plane checks the rows column-wise. A pydantic list[dict] parameter here
    # copied every row and Powertools logged its repr: ~2.5 ms per 1,000 rows (make bench).
    service = get_service()
    request = predict_codec.decode(predict_codec.read_json(_raw_body(), settings.max_body_bytes))
    inference = service.dataplane.infer(request, request_id=_request_id(), observer=observer)
    body = predict_codec.encode(inference, service.model_info_ref())
    return _json(200, body, {"X-Model-Version": service.manifest.version})


@app.get(
    "/health",
    summary="Readiness of this execution environment",
    tags=["ops"],
    responses=answers("Health", 503, error_schemas={503: "HealthNotReady"}),
)
def health() -> Response[str]:
    try:
        service = get_service()
    except ServingError as err:
        return _json(503, {"status": "not_ready", "reason": err.message})
    return _json(200, {"status": "ready", "model": service.model_info_ref()})


@app.get(
    "/model",
    summary="The model's public contract (manifest without baselines)",
    tags=["ops"],
    responses=answers("ModelContract", 503),
)
def model() -> Response[str]:
    return _json(200, get_service().manifest.public())


@app.get(
    "/openapi.json",
    summary="This API's contract (built by `make openapi`)",
    tags=["ops"],
    responses=answers("OpenAPIDocument", 503),
)
def openapi() -> Response[str]:
    try:  # built beside the manifest at build time; never generated here (cold start)
        return Response(200, JSON, (settings.model_dir / OPENAPI_FILE).read_text(encoding="utf-8"))
    except OSError as exc:
        raise not_ready(f"no OpenAPI document in the model directory: {exc.strerror}") from exc


@app.exception_handler(ServingError)
def _serving_error(err: ServingError) -> Response[str]:
    return _error(err)


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(_exc: UnicodeDecodeError) -> Response[str]:
    # Powertools decodes a base64 body as UTF-8 before parsing it (fuzzing found this as a 500).
    return _error(malformed("body is not UTF-8 encoded JSON"))


@app.not_found
def _not_found(_exc: Exception) -> Response[str]:
    # API Gateway hands every path and method to the function (one greedy route), so "no route"
    # is answered here: 405 with Allow where the path is served with other methods, else 404.
    event = app.current_event
    allowed = _methods_serving(event.path)
    if not allowed:
        return _error(not_found("no such route; see GET /openapi.json"))
    response = _error(method_not_allowed(event.http_method, event.path, allowed))
    response.headers["Allow"] = ", ".join(allowed)
    return response


def _methods_serving(path: str) -> list[str]:
    # The resolver's own compiled route rules (Powertools 3.x keeps them in these two lists; the
    # 405 tests in tests/unit/functions fail if an upgrade moves them).
    routes = [*getattr(app, "_static_routes", []), *getattr(app, "_dynamic_routes", [])]
    return sorted({r.method for r in routes if r.rule.match(path)})


@app.exception_handler(Exception)
def _internal(exc: Exception) -> Response[str]:
    # Logged with the stack for operators; the caller gets a request id, never a trace.
    logger.exception("unhandled error")
    observer.internal_error()
    err = internal()
    return _json(err.status, predict_codec.error_body(err, _request_id()))


def _service_or_none() -> Service | None:
    try:
        return get_service()
    except ServingError:
        return None


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)  # predictions do not belong in traces
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    observer.begin(context.invoked_function_arn)
    observer.invoked(_service_or_none())
    # The API Gateway request id; a dict lookup instead of Powertools' per-request JMESPath query.
    logger.set_correlation_id(event.get("requestContext", {}).get("requestId"))
    response = app.resolve(event, context)
    metrics.add_metric(
        name="HandlerTime", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
    return response
