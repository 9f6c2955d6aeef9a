"""Shadow challenger: a second model version scores sampled live rows without touching any answer.

Mechanism, chosen by measurement (README / docs/releasing-a-model.md "Shadow challenger"): inline,
in the API function, after the champion has answered and before the response leaves, within a
latency budget. For the models this project serves, scoring a sampled row with a second
in-memory onnxruntime session costs tens of microseconds; scoring it later from the capture
stream would cost a separate function, S3 reads and JSON parsing per row, see minutes of
Firehose buffering before any disagreement shows, and could never score a feature that
ONNXLAMBDA_REDACT_FIELDS keeps out of the capture.

What it does per answered request (any protocol; functions/api/observe.py calls it):
- `pick` draws one uniform number per row: capture takes u < ONNXLAMBDA_CAPTURE_SAMPLE_RATE, the shadow
  u < ONNXLAMBDA_SHADOW_SAMPLE_RATE, so with a shadow rate at or above the capture rate every captured row
  carries the challenger's answer next to the champion's;
- the challenger validates the sampled rows *as sent* with its own contract (a row it would refuse
  is counted and recorded with its codes: the diff's "breaking" in live form), runs them, and
  compares: same label (classification), or |difference| within a tolerance (regression);
- at most SHADOW_MAX_ROWS rows per request, and fewer when its measured per-row cost says the
  ONNXLAMBDA_SHADOW_BUDGET_MS budget would be exceeded (the rest are counted as skipped);
- any exception is caught and counted (ShadowErrors): the champion's answer is already made and is
  returned byte for byte as it would be without a shadow.

Where the challenger comes from: its own layer (template.yaml ChallengerLayer, built from
models/$(CHALLENGER)), mounted at /opt/challenger: model.onnx + manifest.json, the sha256 checked
at load exactly like the champion's, so every shadow prediction in the capture names a model
version and sha256 that is provably the bytes that produced it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from onnxlambda import settings
from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, NumericBaseline, RegressionOutput
from onnxlambda.monitoring.metrics import (
    SHADOW_DISAGREEMENTS,
    SHADOW_ERRORS,
    SHADOW_REFUSED,
    SHADOW_ROWS,
    SHADOW_SKIPPED,
    SHADOW_TIME,
    MetricValues,
)
from onnxlambda.serving.dataplane import Decoded, Inference, answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator

DEFAULT_CHALLENGER_DIR: Final = "/opt/challenger"  # where the challenger layer lands on Lambda
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    # Share of answered rows the challenger scores (0 = off: nothing is loaded).
    sample_rate: float = 0.0
    # The challenger model directory (model.onnx + manifest.json), the challenger layer on Lambda.
    challenger_dir: Path = Path(DEFAULT_CHALLENGER_DIR)
    # Most time the shadow may add to one request, judged from its measured per-row cost.
    budget_ms: float = 5.0
    # Most rows scored per request, whatever the budget.
    max_rows: int = 100
    # Regression: |challenger - champion| above this is a disagreement (default: a tenth of the
    # champion's baseline output std_dev).
    value_tolerance: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShadowSettings:
        """From ONNXLAMBDA_SHADOW_* and ONNXLAMBDA_CHALLENGER_DIR (onnxlambda.settings)."""
        return cls(
            sample_rate=settings.get("ONNXLAMBDA_SHADOW_SAMPLE_RATE", env),
            challenger_dir=settings.get("ONNXLAMBDA_CHALLENGER_DIR", env),
            budget_ms=settings.get("ONNXLAMBDA_SHADOW_BUDGET_MS", env),
            max_rows=settings.get("SHADOW_MAX_ROWS", env),
            value_tolerance=settings.get("SHADOW_VALUE_TOLERANCE", env),
        )


def pick(
    n: int, capture_rate: float, shadow_rate: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Rows to capture and rows to shadow, from one uniform draw per row (nested samples)."""
    if n == 0 or (capture_rate <= 0.0 and shadow_rate <= 0.0):
        return [], []
    u = rng.random(n)
    return np.flatnonzero(u < capture_rate).tolist(), np.flatnonzero(u < shadow_rate).tolist()


@dataclass(slots=True)
class ShadowOutcome:
    """What the shadow did for one request: per-row capture fields and the counts for metrics."""

    per_row: dict[int, dict[str, Any]] = field(default_factory=dict)
    scored: int = 0
    disagreed: int = 0
    refused: int = 0
    skipped: int = 0
    errors: int = 0
    elapsed_ms: float = 0.0

    def metrics(self) -> MetricValues:
        """Counts only when non-zero (a Sum needs no zeros; every metric costs Powertools work)."""
        values: MetricValues = {}
        for name, count in (
            (SHADOW_ROWS, self.scored),
            (SHADOW_DISAGREEMENTS, self.disagreed),
            (SHADOW_REFUSED, self.refused),
            (SHADOW_SKIPPED, self.skipped),
            (SHADOW_ERRORS, self.errors),
        ):
            if count:
                values[name] = ("Count", float(count))
        if self.scored or self.refused or self.errors:
            values[SHADOW_TIME] = ("Milliseconds", self.elapsed_ms)
        return values


def _raw_row(request: Decoded, i: int) -> dict[str, Any]:
    """Row i as the caller sent it: every key of a /predict object, or every V2 column."""
    if request.rows is not None:
        row = request.rows[i]
        return dict(row) if isinstance(row, dict) else {}
    assert request.columns is not None
    return {name: column[i] for name, column in request.columns.items()}


class Challenger:
    """A loaded challenger model next to the champion; `score` never raises."""

    def __init__(self, runtime: ModelRuntime, champion: Manifest, settings: ShadowSettings) -> None:
        self.runtime = runtime
        self.manifest = runtime.manifest
        self.settings = settings
        self._validator = Validator(runtime.manifest, max_rows=max(settings.max_rows, 1))
        self._per_row_ms: float | None = None  # running estimate of validate + run per row
        self.identity = {
            "model_name": self.manifest.name,
            "model_version": self.manifest.version,
            "model_sha256": self.manifest.sha256,
        }
        self._tolerance = settings.value_tolerance
        if self._tolerance is None and isinstance(champion.baselines.output, NumericBaseline):
            self._tolerance = 0.1 * champion.baselines.output.std_dev
        self._comparable = type(champion.output) is type(runtime.manifest.output)

    @classmethod
    def load(cls, settings: ShadowSettings, champion: Manifest) -> Challenger | None:
        """The challenger, or None when shadowing is off or no challenger model is installed.

        Raises ModelLoadError when a challenger is installed but does not load (tampered bytes,
        a graph that does not match its manifest): the caller logs it and serves without shadow.
        """
        if settings.sample_rate <= 0.0 or not (settings.challenger_dir / "manifest.json").is_file():
            return None
        runtime = ModelRuntime.load(settings.challenger_dir)
        if runtime.manifest.sha256 == champion.sha256:
            _log.warning("the challenger is the champion's own model.onnx: shadowing compares it with itself")
        return cls(runtime, champion, settings)

    def budget_rows(self) -> int:
        """How many rows fit the budget, from the measured cost per row (all, until measured)."""
        cap = max(self.settings.max_rows, 0)
        if self._per_row_ms is None or self._per_row_ms <= 0:
            return cap
        return max(1, min(cap, int(self.settings.budget_ms / self._per_row_ms)))

    def score(self, inference: Inference, request: Decoded, rows: Sequence[int]) -> ShadowOutcome:
        outcome = ShadowOutcome()
        if not rows:
            return outcome
        started = time.perf_counter()
        try:
            self._score(inference, request, list(rows), outcome)
        except Exception as exc:  # the champion's answer must never depend on the challenger
            # The type only: a message could quote request values (ONNXLAMBDA_REDACT_FIELDS).
            _log.warning("shadow scoring failed: %s", type(exc).__name__)
            outcome.errors += 1
            outcome.per_row.clear()
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return outcome

    def _score(self, inference: Inference, request: Decoded, rows: list[int], outcome: ShadowOutcome) -> None:
        allowed = self.budget_rows()
        outcome.skipped = max(len(rows) - allowed, 0)
        rows = rows[:allowed]
        if not rows:
            return
        started = time.perf_counter()
        batch = self._validator.validate_partial([_raw_row(request, i) for i in rows])
        mine: list[dict[str, Any]] = []
        if batch.rows:
            mine = answers(self.manifest, self.runtime.run(batch.columns, batch.rows))
        cost = (time.perf_counter() - started) * 1000.0 / len(rows)
        self._per_row_ms = cost if self._per_row_ms is None else 0.8 * self._per_row_ms + 0.2 * cost
        champion = answers(inference.manifest, inference.prediction, [rows[k] for k in batch.good.tolist()])
        for k, problems in batch.errors.items():
            outcome.refused += 1
            outcome.per_row[rows[k]] = {
                "shadow": {**self.identity, "refused": sorted({p.code for p in problems})}
            }
        for k, theirs, ours in zip(batch.good.tolist(), mine, champion, strict=True):
            agree = self._agree(ours, theirs, inference.manifest)
            outcome.scored += 1
            outcome.disagreed += not agree
            outcome.per_row[rows[k]] = {"shadow": {**self.identity, "prediction": theirs, "agree": agree}}

    def _agree(self, champion: Mapping[str, Any], challenger: Mapping[str, Any], manifest: Manifest) -> bool:
        if not self._comparable:
            return False
        if isinstance(manifest.output, ClassificationOutput):
            return bool(champion.get("label") == challenger.get("label"))
        assert isinstance(manifest.output, RegressionOutput)
        assert isinstance(self.manifest.output, RegressionOutput)
        ours, theirs = champion[manifest.output.name], challenger[self.manifest.output.name]
        if self._tolerance is None:
            return bool(ours == theirs)
        return abs(float(theirs) - float(ours)) <= self._tolerance


def load_challenger(settings: ShadowSettings, champion: Manifest) -> tuple[Challenger | None, str | None]:
    """(challenger, None), or (None, why it is not shadowing) - never raises."""
    try:
        challenger = Challenger.load(settings, champion)
    except (ModelLoadError, ValueError) as exc:
        return None, f"challenger not loaded: {exc}"
    if challenger is None:
        why = (
            "ONNXLAMBDA_SHADOW_SAMPLE_RATE is 0"
            if settings.sample_rate <= 0
            else f"no challenger model in {settings.challenger_dir}"
        )
        return None, why
    return challenger, None


__all__ = [
    "DEFAULT_CHALLENGER_DIR",
    "Challenger",
    "ShadowOutcome",
    "ShadowSettings",
    "load_challenger",
    "pick",
]
