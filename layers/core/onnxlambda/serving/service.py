"""The loaded model and what serves it, once per execution environment.

Transports (the API function's routes, the batch function) call `get_service()`; they never
touch onnxruntime or the manifest's internals directly. If the model cannot be loaded the
failure is kept and reported by `load_error()` and as 503s, never as a half-working service.
"""

from __future__ import annotations

from typing import Any

from onnxlambda import settings
from onnxlambda.contract.errors import ModelLoadError, ServingError, not_ready
from onnxlambda.contract.manifest import Manifest
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.dataplane import DataPlane, Observer
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from onnxlambda.settings import Settings


class Service:
    def __init__(self, runtime: ModelRuntime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.manifest: Manifest = runtime.manifest
        self.validator = Validator(
            runtime.manifest, max_rows=settings.max_rows, max_error_details=settings.max_error_details
        )
        self.redactor = Redactor(settings.redact_fields)
        self.dataplane = DataPlane(runtime, self.validator, self.redactor)
        self.model_ref = {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "sha256": self.manifest.sha256,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Service:
        return cls(
            ModelRuntime.load(settings.model_dir, intra_op_threads=settings.ort_intra_op_threads), settings
        )

    def predict(
        self, body: object, request_id: str | None = None, observer: Observer | None = None
    ) -> dict[str, Any]:
        """The /predict answer for a parsed `{"instances": [...]}` body (tools, tests, benches):
        what the API's route answers, without the transport."""
        from onnxlambda.codecs import predict as predict_codec  # the codec imports this package

        inference = self.dataplane.infer(predict_codec.decode(body), request_id=request_id, observer=observer)
        return predict_codec.encode(inference, self.model_info_ref())

    def log_keys(self) -> dict[str, str]:
        """What every log line of every function carries: exactly which model is serving."""
        return {
            "model_name": self.manifest.name,
            "model_version": self.manifest.version,
            "model_sha256": self.manifest.sha256,
        }

    def model_info_ref(self) -> dict[str, str]:
        """Which bytes answered, from which Lambda version: in every answer of every protocol."""
        return {**self.model_ref, "function_version": settings.get("AWS_LAMBDA_FUNCTION_VERSION")}


# -- one service per execution environment ---------------------------------------------------

_service: Service | None = None
_load_error: str | None = None


def get_service(settings: Settings | None = None) -> Service:
    """The loaded service, built on first use; raises a 503 ServingError if loading failed."""
    global _service, _load_error  # noqa: PLW0603 - the per-execution-environment singleton
    if _service is None and _load_error is None:
        try:
            _service = Service.from_settings(settings or Settings.from_env())
        except ModelLoadError as exc:
            _load_error = str(exc)
    if _service is None:
        raise not_ready(f"model not loaded: {_load_error}")
    return _service


def load_error() -> str | None:
    return _load_error


def reset_service() -> None:
    """Forget the loaded service (tests, or a deliberate reload)."""
    global _service, _load_error
    _service, _load_error = None, None


__all__ = ["Service", "ServingError", "get_service", "load_error", "reset_service"]
