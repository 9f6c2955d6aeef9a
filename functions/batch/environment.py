"""What both batch functions (app.py: S3 events; distributed.py: the large-object state machine's
tasks) set up once per execution environment: their settings, the model, the log keys, the S3
client. Both ship from this directory, so each imports this module beside it."""

from typing import Any

from aws_lambda_powertools import Logger

from onnxlambda import settings as settings_catalogue
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.job import DistributedConfig
from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.batch.s3 import s3_client as build_s3_client
from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.redaction import WithholdExceptionMessages
from onnxlambda.serving.service import get_service, load_error
from onnxlambda.settings import Settings

config = BatchConfig.from_env()  # refuses overlapping input/output prefixes at init
distributed = DistributedConfig.from_env()
distributed.check(config)  # ... and a work prefix overlapping either
settings = Settings.from_env()
s3_settings = S3ClientSettings.from_env()

_s3: Any = None


def prepare(logger: Logger, when_not_loaded: str) -> None:
    """Load the model and give every log line its identity; a model that does not load is logged
    with `when_not_loaded` (what then happens to the function's work) and raises on first use."""
    # With ONNXLAMBDA_REDACT_FIELDS set, a traceback keeps its frames and type, not a message quoting a value.
    logger.addFilter(WithholdExceptionMessages(lambda: bool(settings.redact_fields)))
    try:
        logger.append_keys(**get_service(settings).log_keys())
    except ServingError:
        logger.error(f"model failed to load; {when_not_loaded}", extra={"reason": load_error()})
    logger.append_keys(function_version=settings_catalogue.get("AWS_LAMBDA_FUNCTION_VERSION"))


def s3_client() -> Any:
    """Created on first use (after any test has set up its S3 mock), then reused."""
    global _s3  # noqa: PLW0603 - one client per execution environment
    if _s3 is None:
        _s3 = build_s3_client(s3_settings)
    return _s3
