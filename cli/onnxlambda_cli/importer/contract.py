"""The contract derived from the reference data and the graph: features, output, golden rows.

Rules (docs/import.md has the long form):
- numeric range: the data's min/max widened by half the span on each side, rounded outwards to
  one digit below the span's magnitude, clamped at 0 when the data never goes below 0
  (`plausible_range`); `--range` overrides it;
- categories: the values seen in the data, sorted;
- nullable: the data has missing values in the column AND the model still answers with finite
  outputs when the column is missing (checked by running it); otherwise the feature is required
  and the command says why;
- classes: the graph's own order; names from --class-names for integer labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.manifest import ClassificationOutput, Dtype, Feature, RegressionOutput
from onnxlambda_cli.importer.data import Row, Value
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.graph import Graph, OutputPlan

FloatArray = npt.NDArray[np.float64]


def plausible_range(values: FloatArray, *, non_negative: bool, widen: float = 0.5) -> tuple[float, float]:
    """The allowed [minimum, maximum] for a numeric feature.

    The data's min/max widened by `widen` x (max - min) on each side, rounded outwards to a step
    of 10**(floor(log10(range)) - 1), and clamped at 0 when the quantity cannot be negative.
    """
    finite = values[~np.isnan(values)]
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    exponent = math.floor(math.log10(span)) - 1
    step = 10.0**exponent
    ndigits = max(0, -exponent)
    low = round(math.floor((lo - widen * span) / step) * step, ndigits)
    high = round(math.ceil((hi + widen * span) / step) * step, ndigits)
    if non_negative:
        low = max(low, 0.0)
    return float(low), float(high)


def numeric_feature(
    name: str,
    dtype: Dtype,
    column: Sequence[float | int | None],
    *,
    description: str,
    bounds: tuple[float, float] | None = None,
) -> Feature:
    values = np.array([np.nan if v is None else float(v) for v in column], dtype=np.float64)
    if np.isnan(values).all():
        raise ImportInputError(
            f"column {name!r} has no values in the reference data: nothing to derive a range from"
        )
    low, high = bounds or plausible_range(values, non_negative=bool(np.nanmin(values) >= 0))
    return Feature(
        name=name,
        dtype=dtype,
        description=description,
        nullable=bool(np.isnan(values).any()),
        minimum=low,
        maximum=high,
    )


def string_feature(name: str, column: Sequence[str | None], *, description: str, missing: str) -> Feature:
    categories = sorted({v for v in column if v is not None})
    if not categories:
        raise ImportInputError(
            f"column {name!r} has no values in the reference data: nothing to derive categories from"
        )
    return Feature(
        name=name,
        dtype="string",
        description=description,
        nullable=any(v is None for v in column),
        categories=categories,
        missing_string=missing,
    )


# -- output ---------------------------------------------------------------------------------------


def classification_output(
    plan: OutputPlan, graph: Graph, class_names: Sequence[str] | None
) -> ClassificationOutput:
    classes = graph.classes
    width = (
        plan.probabilities.width
        if plan.probabilities is not None and plan.probability_format == "tensor"
        else None
    )
    if classes is None:
        classes = _classes_without_graph_labels(plan, class_names, width)
    integers = plan.integer_labels if plan.label is not None or plan.probability_format == "zipmap" else None
    if integers is not None and integers != all(isinstance(c, int) for c in classes):
        kind = "int64" if integers else "string"
        raise ImportInputError(
            f"the model's label output is {kind} but its classes ({_show(classes)}, from "
            f"{graph.classes_from}) are not: this export is inconsistent"
        )
    if width is not None and width != len(classes):
        raise ImportInputError(
            f"the probability output {plan.probabilities.describe() if plan.probabilities else ''} has "
            f"{width} columns but the model has {len(classes)} classes ({_show(classes)})"
        )
    labels = [str(c) for c in classes]
    values: list[int] | None = [int(c) for c in classes] if all(isinstance(c, int) for c in classes) else None
    if class_names is not None:
        if values is None and graph.classes is not None:
            raise ImportInputError(
                f"the model's classes are already names ({_show(classes)}); --class-names is for "
                "integer labels: drop it"
            )
        if len(class_names) != len(classes):
            raise ImportInputError(
                f"--class-names gives {len(class_names)} names ({', '.join(class_names)}) for the "
                f"model's {len(classes)} classes ({_show(classes)}), in this order"
            )
        if len(set(class_names)) != len(class_names) or not all(n.strip() for n in class_names):
            raise ImportInputError(f"--class-names must be unique and non-empty, got {list(class_names)}")
        labels = list(class_names)
    return ClassificationOutput(
        label_tensor=plan.label.name if plan.label is not None else None,
        probability_tensor=plan.probabilities.name if plan.probabilities is not None else None,
        probability_format=plan.probability_format,
        labels=labels,
        class_values=values if plan.label is not None or plan.probability_format == "zipmap" else None,
    )


def _classes_without_graph_labels(
    plan: OutputPlan, class_names: Sequence[str] | None, width: int | None
) -> list[int] | list[str]:
    if class_names is None:
        raise ImportInputError(
            "the graph names no classes (no ZipMap, classifier node or classes initializer): pass "
            "--class-names with one name per class, in the order of the probability columns"
        )
    if plan.label is not None and not plan.integer_labels:
        raise ImportInputError(
            "the graph's string labels are not listed in the graph: the class order cannot be read"
        )
    if width is not None and width != len(class_names):
        raise ImportInputError(
            f"--class-names gives {len(class_names)} names but the probability output has {width} columns"
        )
    if plan.label is None:
        return list(class_names)
    # Integer labels and no list in the graph: the labels are taken to be the column positions.
    return list(range(len(class_names)))


def regression_output(plan: OutputPlan, name: str) -> RegressionOutput:
    assert plan.value is not None
    return RegressionOutput(value_tensor=plan.value.name, name=name)


def _show(classes: Sequence[object]) -> str:
    return ", ".join(map(str, classes))


# -- golden rows ----------------------------------------------------------------------------------


def pick_rows(n_available: int, n: int, seed: int) -> list[int]:
    """`n` distinct row positions out of `n_available`, deterministic for a seed, in order."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_available, size=min(n, n_available), replace=False))


@dataclass(frozen=True, slots=True)
class GoldenPick:
    rows: list[Row]
    edge: list[bool]  # True for constructed edge cases (dropped if the model cannot score them)


def golden_rows(pool: Sequence[Row], features: Sequence[Feature], n: int, seed: int) -> GoldenPick:
    """`n` seeded reference rows, then edge cases: each nullable feature missing (unless a picked
    row already has it missing), all of them missing at once, every number at its minimum and at
    its maximum."""
    picked = [dict(pool[i]) for i in pick_rows(len(pool), n, seed)]
    edges: list[Row] = []
    base = picked[0]
    nullable = [f.name for f in features if f.nullable]
    for name in nullable:
        if not any(row[name] is None for row in picked):
            edges.append({**base, name: None})
    if len(nullable) > 1:
        edges.append({**base, **dict.fromkeys(nullable)})
    numeric = [f for f in features if f.minimum is not None and f.maximum is not None]
    if numeric:
        edges.append({**base, **{f.name: _bound(f, f.minimum) for f in numeric}})
        edges.append({**base, **{f.name: _bound(f, f.maximum) for f in numeric}})
    return GoldenPick(picked + edges, [False] * len(picked) + [True] * len(edges))


def _bound(feature: Feature, value: float | None) -> Value:
    if value is None:
        return None
    if feature.dtype == "int64":  # the nearest integer inside the range
        return math.ceil(value) if value == feature.minimum else math.floor(value)
    return value


def complete(row: Mapping[str, Value]) -> bool:
    return all(v is not None for v in row.values())


__all__ = [
    "GoldenPick",
    "classification_output",
    "complete",
    "golden_rows",
    "numeric_feature",
    "pick_rows",
    "plausible_range",
    "regression_output",
    "string_feature",
]
