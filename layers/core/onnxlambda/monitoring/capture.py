"""Data capture: sampled request rows with their predictions, and feedback, as JSON log lines.

The request path never calls S3. A captured row is one single-line JSON object written to the
function's stdout (microseconds, inside the invoke); a CloudWatch Logs subscription filter that
matches `record_type` ships those lines through Kinesis Data Firehose to S3 (template.yaml), where
the monitor reads them. Feedback takes the same path, so ground truth and predictions land side by
side and the API function needs no S3 permissions at all.

Record shapes (one per line, `schema` 1):

    {"record_type": "inference", "schema": 1, "ts": <epoch ms>, "inference_id": ..., "request_id": ...,
     "protocol": "predict" | "v2", "model_name": ..., "model_version": ..., "model_sha256": ...,
     "features": {name: value, ...}, "prediction": {"label": ..., "probabilities": {...}} | {name: value},
     "redacted": [names],
     "shadow": {"model_name", "model_version", "model_sha256", "prediction": {...}, "agree": bool}
               | {..., "refused": [codes]}}     (only with a shadow challenger, on the rows it scored)
    {"record_type": "feedback", "schema": 1, "ts": <epoch ms>, "inference_id": ..., "actual": ...,
     "model_version": ...}

Only the manifest's features are captured (an ignored extra request field never is). Left out
entirely, and named in `redacted`, are the union of two lists:
- ONNXLAMBDA_REDACT_FIELDS (template parameter RedactFields): the deployment's sensitive fields, whose values
  never leave the request (not in logs, error bodies, or captures: onnxlambda.contract.redaction);
- ONNXLAMBDA_CAPTURE_REDACT_FIELDS (CaptureRedactFields): features kept out of the capture only (their
  values may still appear in error messages), e.g. a field nobody needs to monitor.
A field is never captured if either list names it; neither list can re-enable the other's.
A redacted feature is left out rather than masked, so the monitor skips it instead of judging
"[REDACTED]" as a category.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from onnxlambda import settings
from onnxlambda.contract.manifest import Manifest
from onnxlambda.serving.dataplane import Decoded, Inference
from onnxlambda.serving.dataplane import answers as answers_of

SCHEMA: Final = 1
INFERENCE: Final = "inference"
FEEDBACK: Final = "feedback"
# The subscription filter in template.yaml selects exactly these lines.
SUBSCRIPTION_FILTER_PATTERN: Final = '{ ($.record_type = "inference") || ($.record_type = "feedback") }'
# CloudWatch Logs events are at most 256 KB; a row is a few hundred bytes.
MAX_LINE_BYTES: Final = 200_000


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    sample_rate: float = 0.0
    # Never captured: ONNXLAMBDA_CAPTURE_REDACT_FIELDS | ONNXLAMBDA_REDACT_FIELDS (the module docstring).
    redact: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CaptureSettings:
        """The sample rate, and what is never captured: CAPTURE_REDACT_FIELDS | REDACT_FIELDS."""
        return cls(
            sample_rate=settings.get("ONNXLAMBDA_CAPTURE_SAMPLE_RATE", env),
            redact=settings.get("ONNXLAMBDA_CAPTURE_REDACT_FIELDS", env)
            | settings.get("ONNXLAMBDA_REDACT_FIELDS", env),
        )


def _stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class Capturer:
    """Samples rows (independently, with probability `sample_rate`) and writes them as log lines."""

    def __init__(
        self,
        manifest: Manifest,
        settings: CaptureSettings,
        *,
        write: Callable[[str], object] = _stdout_write,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._write = write
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security
        self._clock = clock
        self._features = [n for n in manifest.feature_names if n not in settings.redact]
        self._redacted = sorted(settings.redact & set(manifest.feature_names))
        self._model = {
            "model_name": manifest.name,
            "model_version": manifest.version,
            "model_sha256": manifest.sha256,
        }

    def capture(
        self,
        inference: Inference,
        request: Decoded,
        *,
        picked: Sequence[int] | None = None,
        extra: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> int:
        """Write the sampled rows of one answered request (any protocol); returns how many.

        `picked` (rows already sampled by the caller) and `extra` (fields added to a row's record)
        serve the shadow challenger (onnxlambda.release.shadow): its answer rides in the same record.
        """
        rate = self.settings.sample_rate
        if rate <= 0.0:
            return 0
        if picked is None:
            rand = self._rng.random
            picked = [i for i in range(inference.rows) if rate >= 1.0 or rand() < rate]
        if not picked:
            return 0
        ts = int(self._clock() * 1000)
        answers = answers_of(inference.manifest, inference.prediction, picked)
        lines = []
        for i, prediction in zip(picked, answers, strict=True):
            record: dict[str, Any] = {
                "record_type": INFERENCE,
                "schema": SCHEMA,
                "ts": ts,
                "inference_id": inference.inference_id(i),
                "request_id": inference.request_id,
                "protocol": inference.protocol,
                **self._model,
                "features": request.row(i, self._features),
                "prediction": prediction,
            }
            if self._redacted:
                record["redacted"] = self._redacted
            if extra and i in extra:
                record.update(extra[i])
            try:
                line = json.dumps(record, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError):
                continue  # a value JSON cannot carry: skip the row, never fail the request
            if len(line) <= MAX_LINE_BYTES:
                lines.append(line)
        if not lines:
            return 0
        # One write for all lines: each line becomes its own CloudWatch Logs event.
        self._write("\n".join(lines) + "\n")
        return len(lines)


def feedback_record(inference_id: str, actual: str | float, model_version: str, ts_ms: int) -> str:
    return json.dumps(
        {
            "record_type": FEEDBACK,
            "schema": SCHEMA,
            "ts": ts_ms,
            "inference_id": inference_id,
            "actual": actual,
            "model_version": model_version,
        },
        separators=(",", ":"),
        allow_nan=False,
    )


def write_feedback(
    inference_id: str,
    actual: str | float,
    model_version: str,
    *,
    write: Callable[[str], object] = _stdout_write,
    clock: Callable[[], float] = time.time,
) -> None:
    write(feedback_record(inference_id, actual, model_version, int(clock() * 1000)) + "\n")


__all__ = [
    "FEEDBACK",
    "INFERENCE",
    "SUBSCRIPTION_FILTER_PATTERN",
    "CaptureSettings",
    "Capturer",
    "feedback_record",
    "write_feedback",
]
