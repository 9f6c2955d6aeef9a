"""POST /feedback: the actual outcome for an earlier prediction, for live accuracy.

The outcome is checked against the manifest (one of the labels for a classifier, a finite number
for a regressor) and written as a single JSON log line on the same path as captured predictions
(log subscription -> Firehose -> S3): no S3 call on the request path and no S3 permission for the
API function. The monitor joins it with the captured prediction by inference id.
"""

import math
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from onnxlambda.codecs.feedback import parse_feedback
from onnxlambda.contract.errors import FieldError, ServingError, malformed
from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from onnxlambda.monitoring import metrics as names
from onnxlambda.monitoring.capture import write_feedback
from onnxlambda.serving.service import get_service

if __package__:  # imported as functions.api.feedback (tests, tools)
    from functions.api import httpevent
    from functions.api.apidoc import answers, request_body
else:  # on Lambda the function's directory is the root
    import httpevent  # type: ignore[import-not-found,no-redef]
    from apidoc import answers, request_body  # type: ignore[import-not-found,no-redef]

metrics = Metrics()  # shares its metric set with app.py's instance (Powertools class state)

router = Router()  # type: ignore[no-untyped-call]


def checked_actual(manifest: Manifest, actual: Any) -> str | float:
    """The outcome if the model's output can be compared with it, else a 422."""
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        if isinstance(actual, str) and actual in out.labels:
            return actual
        message = f"'actual' must be one of: {', '.join(out.labels)}"
    else:
        if type(actual) in (int, float) and math.isfinite(actual):
            return float(actual)
        message = "'actual' must be a finite number"
    raise ServingError(
        "invalid_feedback", message, [FieldError(None, "actual", "invalid", message)], status=422
    )


@router.post(
    "/feedback",
    summary="Report the actual outcome of a prediction",
    tags=["monitoring"],
    responses=answers("FeedbackAccepted", 400, 413, 422, 503, status=202),
    openapi_extensions=request_body("FeedbackRequest"),
)
def feedback() -> Response[str]:
    # The body is checked by hand (onnxlambda.codecs.feedback), so no route needs Powertools'
    # per-request validation middleware (app.py: enable_validation=False). Its schema:
    # onnxlambda_cli.openapi.model_schemas.
    service = get_service()
    event = router.current_event
    # Size-checked (413) before decoding, like every other body: httpevent.raw_body.
    raw = httpevent.raw_body(event.body, bool(event.is_base64_encoded), service.settings.max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("body is not UTF-8 encoded JSON") from None
    request = parse_feedback(text)
    manifest = service.manifest
    actual = checked_actual(manifest, request.actual)
    write_feedback(request.inference_id, actual, manifest.version)
    metrics.add_metric(name=names.FEEDBACK, unit=MetricUnit.Count, value=1)
    return Response(
        status_code=202,
        content_type="application/json",
        body=f'{{"status": "accepted", "inference_id": "{request.inference_id}"}}',
    )
