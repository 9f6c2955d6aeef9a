"""Compare a /predict response with the model's golden set, within the manifest's tolerances.

The golden set (`golden.json`) holds request rows and the responses the released model gave for
them at training time. Anything that serves the model - a freshly deployed Lambda version, a
local build, another transport - can be checked against it the same way: send
`golden_request(golden)` to /predict and pass the response body to `compare_predictions`, which
lists every difference. An empty list means "same model, same answers".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onnxlambda.contract.manifest import (
    ClassificationOutput,
    GoldenCase,
    GoldenSet,
    Manifest,
    RegressionOutput,
)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference: which golden case (None for the response as a whole), where, what."""

    case: int | None
    field: str
    expected: object
    actual: object

    def __str__(self) -> str:
        where = f"case {self.case} " if self.case is not None else ""
        return f"{where}{self.field}: expected {self.expected!r}, got {self.actual!r}"


def golden_request(golden: GoldenSet) -> dict[str, Any]:
    """The /predict body that scores every golden case, in order."""
    return {"instances": [dict(case.instance) for case in golden.cases]}


def check_golden_set(manifest: Manifest, golden: GoldenSet) -> list[Mismatch]:
    """Whether the golden set was written for this very model (name, version and sha256)."""
    return _diff_model_ref(
        {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256},
        {"name": golden.model_name, "version": golden.model_version, "sha256": golden.model_sha256},
        prefix="golden.model",
    )


def check_model_ref(manifest: Manifest, served: object) -> list[Mismatch]:
    """Whether a response's `model` object (from /predict or /health) names the manifest's model."""
    expected = {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
    return _diff_model_ref(expected, served if isinstance(served, Mapping) else {}, prefix="model")


def compare_predictions(manifest: Manifest, golden: GoldenSet, body: object) -> list[Mismatch]:
    """Every difference between a /predict response body and the golden set.

    Checks the model identity in the response, the number of predictions, and per case the label
    (exact) and each class probability (within `golden.probability_tolerance`), or the regression
    value (within `golden.value_tolerance`). Tolerances are absolute: outputs are rounded to 6
    decimals on the wire, and onnxruntime builds differ in the last float32 bits.
    """
    if not isinstance(body, Mapping):
        return [Mismatch(None, "body", "a JSON object", type(body).__name__)]
    mismatches = check_model_ref(manifest, body.get("model"))
    rows = body.get("predictions")
    if not isinstance(rows, Sequence) or isinstance(rows, str) or len(rows) != len(golden.cases):
        actual = len(rows) if isinstance(rows, Sequence) and not isinstance(rows, str) else rows
        return [*mismatches, Mismatch(None, "predictions", len(golden.cases), actual)]
    for index, (case, row) in enumerate(zip(golden.cases, rows, strict=True)):
        mismatches.extend(_compare_row(manifest, index, case, row if isinstance(row, Mapping) else {}))
    return mismatches


def _compare_row(manifest: Manifest, index: int, case: GoldenCase, row: Mapping[str, Any]) -> list[Mismatch]:
    out, spec = manifest.output, manifest.golden
    found: list[Mismatch] = []
    if isinstance(out, ClassificationOutput):
        if row.get("label") != case.expected.get("label"):
            found.append(Mismatch(index, "label", case.expected.get("label"), row.get("label")))
        expected_probs = case.expected.get("probabilities")
        if isinstance(expected_probs, Mapping):
            actual_probs = row.get("probabilities")
            actual_probs = actual_probs if isinstance(actual_probs, Mapping) else {}
            for label, want in expected_probs.items():
                got = actual_probs.get(label)
                if not _close(want, got, spec.probability_tolerance):
                    found.append(Mismatch(index, f"probabilities.{label}", want, got))
        return found
    assert isinstance(out, RegressionOutput)
    want, got = case.expected.get(out.name), row.get(out.name)
    if not _close(want, got, spec.value_tolerance):
        found.append(Mismatch(index, out.name, want, got))
    return found


def _close(expected: object, actual: object, tolerance: float) -> bool:
    numbers = (int, float)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return False
    if not isinstance(expected, numbers) or not isinstance(actual, numbers):
        return False
    # Written so that NaN never compares as close.
    return abs(float(actual) - float(expected)) <= tolerance


def _diff_model_ref(expected: Mapping[str, str], actual: Mapping[str, Any], prefix: str) -> list[Mismatch]:
    return [
        Mismatch(None, f"{prefix}.{key}", want, actual.get(key))
        for key, want in expected.items()
        if actual.get(key) != want
    ]


__all__ = [
    "Mismatch",
    "check_golden_set",
    "check_model_ref",
    "compare_predictions",
    "golden_request",
]
