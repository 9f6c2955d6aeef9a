"""The data plane: one protocol-neutral path, decode ► validate ► run ► encode ► observe.

Codecs (onnxlambda.codecs) turn a protocol's body into a `Decoded` request (row objects or
columns, with the values as sent) and an `Inference` back into the protocol's answer; everything
in between happens here, the same way for every protocol: the same validation and redaction, the
same runtime, the same inference ids, the same observation (input-health metrics and data
capture). Transports pass their observer in; the core never imports a metrics library.
Anchors: MLServer's handlers/dataplane.py + codecs/, KServe's protocol/dataplane.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from onnxlambda.contract.redaction import Redactor
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.tensors import Prediction
from onnxlambda.serving.validation import ColumnHealth, ValidatedBatch, Validator

ProtocolName = Literal["predict", "v2"]
PROBABILITY_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request as a codec read it: row objects (`rows`) or one list per feature (`columns`,
    every feature present), values exactly as sent (the data capture records these)."""

    protocol: ProtocolName
    rows: Sequence[object] | None = None
    columns: Mapping[str, Sequence[Any]] | None = None

    def row(self, i: int, names: Sequence[str]) -> dict[str, Any]:
        if self.rows is not None:
            row = self.rows[i]
            return {n: row.get(n) for n in names} if isinstance(row, dict) else {}
        assert self.columns is not None
        return {n: self.columns[n][i] for n in names}


@dataclass(frozen=True, slots=True)
class Inference:
    """One answered request, before any protocol shapes it."""

    request_id: str
    protocol: ProtocolName
    manifest: Manifest
    prediction: Prediction
    rows: int
    health: ColumnHealth
    inference_ms: float

    def inference_id(self, i: int) -> str:
        """Row i's id: what /feedback joins the outcome on, whichever protocol served it."""
        return f"{self.request_id}-{i}"

    def answers(self) -> list[dict[str, Any]]:
        """Every row's answer in the manifest's vocabulary: {"label", "probabilities"} or
        {<output name>: value} (the /predict row shape, the capture's, the golden set's)."""
        return answers(self.manifest, self.prediction)

    def answer(self, i: int) -> dict[str, Any]:
        return answers(self.manifest, self.prediction, [i])[0]

    def mean_score(self) -> float | None:
        """Mean top-class probability (classification) or mean predicted value (regression)."""
        p = self.prediction
        if p.probabilities is not None and p.probabilities.size:
            return float(np.mean(np.max(p.probabilities, axis=1), dtype=np.float64))
        if p.values is not None and p.values.size:
            return float(np.mean(p.values))
        return None


def answers(
    manifest: Manifest, prediction: Prediction, rows: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        assert prediction.labels is not None
        labels = prediction.labels if rows is None else [prediction.labels[i] for i in rows]
        if prediction.probabilities is None:
            return [{"label": label} for label in labels]
        probs = prediction.probabilities if rows is None else prediction.probabilities[list(rows)]
        rounded = np.round(probs.astype(np.float64), PROBABILITY_DECIMALS).tolist()
        names = out.labels
        return [
            {"label": label, "probabilities": dict(zip(names, p, strict=True))}
            for label, p in zip(labels, rounded, strict=True)
        ]
    assert prediction.values is not None
    values = prediction.values if rows is None else prediction.values[list(rows)]
    return [{out.name: v} for v in values.tolist()]


class Observer(Protocol):
    """What a transport does with every answered request (metrics, capture); refusals are the
    transport's to observe, since some (a bad body) never reach the data plane."""

    def predicted(self, inference: Inference, request: Decoded) -> None: ...


class _Silent:
    def predicted(self, inference: Inference, request: Decoded) -> None:
        return None


class DataPlane:
    """Validate, run and observe, for any protocol. Built once per loaded model."""

    def __init__(self, runtime: ModelRuntime, validator: Validator, redactor: Redactor) -> None:
        self.runtime = runtime
        self.manifest = runtime.manifest
        self.validator = validator
        self.redactor = redactor

    def infer(
        self, request: Decoded, *, request_id: str | None = None, observer: Observer | None = None
    ) -> Inference:
        """All or nothing: every row answered, or one 4xx ServingError listing every problem
        (values of ONNXLAMBDA_REDACT_FIELDS withheld)."""
        try:
            batch = self._validate(request)
        except ServingError as err:
            # `from None`: the original error (with the values) must not ride along in a traceback.
            raise self.redactor.error(err) from None
        started = time.perf_counter()
        prediction = self.runtime.run(batch.columns, batch.rows)
        inference = Inference(
            request_id=request_id or uuid.uuid4().hex,
            protocol=request.protocol,
            manifest=self.manifest,
            prediction=prediction,
            rows=batch.rows,
            health=batch.health,
            inference_ms=(time.perf_counter() - started) * 1000.0,
        )
        (observer or _Silent()).predicted(inference, request)
        return inference

    def _validate(self, request: Decoded) -> ValidatedBatch:
        if request.rows is not None:
            return self.validator.validate(request.rows)
        assert request.columns is not None
        n = len(next(iter(request.columns.values()))) if request.columns else 0
        return self.validator.validate_table(request.columns, n)


__all__ = ["DataPlane", "Decoded", "Inference", "Observer", "ProtocolName", "answers"]
