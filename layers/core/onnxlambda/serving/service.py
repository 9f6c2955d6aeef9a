"""Orchestration: request rows in, validated tensors, predictions out.

Transports (the API function, the batch function, the V2 protocol) call `get_service()` and
`Service.predict`; they never touch onnxruntime or the manifest's internals directly. The service
is built once per execution environment; if the model cannot be loaded the failure is kept and
reported by `health()` and as 503s, never as a half-working service.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxlambda.codecs import fastjson
from onnxlambda.contract.errors import ModelLoadError, ServingError, malformed, not_ready, too_large
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, RegressionOutput
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime, Prediction
from onnxlambda.serving.validation import ColumnHealth, Validator, parse_instances
from onnxlambda.settings import Settings


@dataclass(frozen=True, slots=True)
class PredictOutcome:
    body: dict[str, Any]
    rows: int
    inference_ms: float
    health: ColumnHealth


class Service:
    def __init__(self, runtime: ModelRuntime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.manifest: Manifest = runtime.manifest
        self.validator = Validator(
            runtime.manifest, max_rows=settings.max_rows, max_error_details=settings.max_error_details
        )
        self.redactor = Redactor(settings.redact_fields)
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

    def parse_body(self, raw: str | bytes | None) -> object:
        """Decode a JSON request body, refusing oversized ones before any parsing work."""
        if not raw:
            raise malformed("request body is empty; expected a JSON object")
        if len(raw) > self.settings.max_body_bytes:
            raise too_large(
                "body_too_large", f"body is {len(raw)} bytes; at most {self.settings.max_body_bytes} allowed"
            )
        try:
            return fastjson.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise malformed(f"body is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise malformed("body is not valid JSON: nested too deeply") from exc

    def predict(self, body: object, request_id: str | None = None) -> PredictOutcome:
        """Validate a `{"instances": [...]}` body and predict every row (all or nothing)."""
        try:
            batch = self.validator.validate(parse_instances(body))
        except ServingError as err:
            # `from None`: the original error (with the values) must not ride along in a traceback.
            raise self.redactor.error(err) from None
        started = time.perf_counter()
        prediction = self.runtime.run(batch.tensors)
        inference_ms = (time.perf_counter() - started) * 1000.0
        base = request_id or uuid.uuid4().hex
        rows = shape_rows(self.manifest, prediction)
        for i, row in enumerate(rows):
            row["inference_id"] = f"{base}-{i}"
        return PredictOutcome(
            body={"model": self.model_info_ref(), "predictions": rows},
            rows=batch.rows,
            inference_ms=inference_ms,
            health=batch.health,
        )

    def log_keys(self) -> dict[str, str]:
        """What every log line of every function carries: exactly which model is serving."""
        return {
            "model_name": self.manifest.name,
            "model_version": self.manifest.version,
            "model_sha256": self.manifest.sha256,
        }

    def model_info_ref(self) -> dict[str, str]:
        return {**self.model_ref, "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "local")}


def shape_rows(manifest: Manifest, prediction: Prediction) -> list[dict[str, Any]]:
    """Turn raw outputs into one JSON object per row, in the manifest's vocabulary."""
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        assert prediction.labels is not None
        if prediction.probabilities is None:
            return [{"label": label} for label in prediction.labels]
        probs = np.round(prediction.probabilities.astype(np.float64), 6).tolist()
        names = out.labels
        return [
            {"label": label, "probabilities": dict(zip(names, p, strict=True))}
            for label, p in zip(prediction.labels, probs, strict=True)
        ]
    assert isinstance(out, RegressionOutput)
    assert prediction.values is not None
    return [{out.name: v} for v in prediction.values.tolist()]


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


__all__ = ["PredictOutcome", "Service", "ServingError", "get_service", "load_error", "reset_service"]
