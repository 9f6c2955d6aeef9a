"""What running the model the server's way tells the importer: which features may be null (the
model answers a null with finite outputs), the output baseline, the golden set, and the metrics
on held-out data. Rows are validated and fed exactly as /predict does (onnxlambda.serving).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import (
    CategoricalBaseline,
    ClassificationOutput,
    Feature,
    GoldenCase,
    Manifest,
    Metric,
    NumericBaseline,
    RegressionOutput,
)
from onnxlambda.monitoring.baselines import categorical_baseline, numeric_baseline, sig
from onnxlambda.serving.dataplane import answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.tensors import NP_DTYPES, Prediction
from onnxlambda.serving.validation import Validator
from onnxlambda_cli.importer import contract
from onnxlambda_cli.importer.columns import rows_of, target_cells, typed_columns
from onnxlambda_cli.importer.data import Row, Table, Value, read_table
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.graph import Graph
from onnxlambda_cli.importer.options import ImportOptions

VALUE_DECIMALS: Final = 4  # regression values in golden.json (the golden tolerance is 1e-3)
CHUNK: Final = 10_000  # rows per onnxruntime call when scoring the reference data


def _predict(runtime: ModelRuntime, rows: Sequence[Row]) -> Prediction:
    """The server's answer to these rows: validated and fed exactly as /predict does."""
    validator = Validator(runtime.manifest, max_rows=max(len(rows), 1))
    try:
        batch = validator.validate([dict(r) for r in rows])
    except ServingError as err:
        shown = "; ".join(f"row {d.row} {d.field}: {d.message}" for d in err.details[:3])
        raise ImportInputError(
            f"rows chosen from the data do not pass the derived contract: {shown}"
        ) from None
    return runtime.run(batch.columns, batch.rows)


def _finite(prediction: Prediction) -> npt.NDArray[np.bool_]:
    if prediction.probabilities is not None:
        return np.asarray(np.isfinite(prediction.probabilities).all(axis=1))
    if prediction.values is not None:
        return np.asarray(np.isfinite(prediction.values))
    assert prediction.labels is not None
    return np.ones(len(prediction.labels), dtype=bool)


def verify_nullable(
    manifest: Manifest, graph: Graph, rows: Sequence[Row], seed: int, notes: list[str]
) -> list[Feature]:
    """Each feature the data has nulls in stays nullable only if the model answers a null with
    finite outputs (a linear model without an imputer returns NaN: then the feature is required)."""
    candidates = [f for f in manifest.features if f.nullable]
    if not candidates:
        return list(manifest.features)
    runtime = ModelRuntime(manifest, graph.session, Path("."))
    complete = [r for r in rows if contract.complete(r)] or list(rows)
    sample = [complete[i] for i in contract.pick_rows(len(complete), 32, seed)]
    required: set[str] = set()
    for feature in candidates:
        probe = [{**r, feature.name: None} for r in sample]
        if not _finite(_predict(runtime, probe)).all():
            required.add(feature.name)
            missing = sum(r[feature.name] is None for r in rows)
            notes.append(
                f"feature {feature.name!r} is required (not nullable) although the data has {missing} "
                "missing values: the model returns non-finite outputs (NaN) when it is missing, so the "
                "server refuses a null instead. Impute it in the pipeline and re-export to accept nulls"
            )
    return [replace(f, nullable=False) if f.name in required else f for f in manifest.features]


def baseline_of_outputs(runtime: ModelRuntime, pool: Sequence[Row]) -> NumericBaseline | CategoricalBaseline:
    labels: list[str | None] = []
    values: list[float | None] = []
    for start in range(0, len(pool), CHUNK):
        prediction = _predict(runtime, pool[start : start + CHUNK])
        finite = _finite(prediction)
        if prediction.labels is not None:
            labels += [
                label if ok else None for label, ok in zip(prediction.labels, finite.tolist(), strict=True)
            ]
        elif prediction.values is not None:
            values += [
                sig(float(v)) if ok else None
                for v, ok in zip(prediction.values.tolist(), finite.tolist(), strict=True)
            ]
    if isinstance(runtime.manifest.output, ClassificationOutput):
        return categorical_baseline(labels)
    return numeric_baseline(values)


def pick_golden(
    options: ImportOptions, runtime: ModelRuntime, pool: Sequence[Row], notes: list[str]
) -> list[GoldenCase]:
    if options.golden_instances is not None:
        rows, edge = list(options.golden_instances), [False] * len(options.golden_instances)
    else:
        if options.golden_size < 1:
            raise ImportInputError(f"--golden-size must be at least 1, got {options.golden_size}")
        pick = contract.golden_rows(pool, runtime.manifest.features, options.golden_size, options.seed)
        rows, edge = pick.rows, pick.edge
    prediction = _predict(runtime, rows)
    finite = _finite(prediction).tolist()
    expected = answers(runtime.manifest, prediction)
    cases = []
    for row, answer, ok, constructed in zip(rows, expected, finite, edge, strict=True):
        if not ok:
            if not constructed:
                raise ImportInputError(f"the model returns non-finite outputs for the golden row {row}")
            notes.append(f"edge case left out of the golden set (non-finite outputs): {row}")
            continue
        if isinstance(runtime.manifest.output, RegressionOutput):
            answer = {k: round(float(v), VALUE_DECIMALS) for k, v in answer.items()}  # noqa: PLW2901
        cases.append(GoldenCase(instance=dict(row), expected=answer))
    return cases


def held_out_metrics(  # noqa: PLR0917 - one call site, the pieces of one step
    options: ImportOptions,
    runtime: ModelRuntime,
    order: Sequence[str],
    dtypes: Mapping[str, str],
    target: str | None,
    notes: list[str],
) -> tuple[list[Metric], int, list[Row]]:
    if options.test is None:
        return [], 0, []
    if target is None:
        raise ImportInputError("--test needs --target: the column holding the true answers")
    table = read_table(options.test)
    absent = [c for c in [*order, target] if c not in table.header]
    if absent:
        raise ImportInputError(
            f"{table.name} lacks columns {', '.join(map(repr, absent))} that the reference data has"
        )
    columns = typed_columns(table, runtime.manifest.inputs)
    truth_cells = target_cells(table, target)
    rows = rows_of(order, columns, table.rows)
    fingerprint_rows = [{**r, target: t} for r, t in zip(rows, truth_cells, strict=True)]
    keep = [i for i, t in enumerate(truth_cells) if t is not None]
    if len(keep) < len(rows):
        notes.append(
            f"{len(rows) - len(keep)} rows of {table.name} have no {target!r}: left out of the metrics"
        )
    prediction = _run_unvalidated(runtime, [rows[i] for i in keep])
    finite = _finite(prediction)
    if not finite.all():
        notes.append(
            f"{int((~finite).sum())} rows of {table.name} get non-finite outputs (missing values the model "
            "cannot handle): left out of the metrics"
        )
    out = runtime.manifest.output
    good = np.flatnonzero(finite)
    if not good.size:
        raise ImportInputError(
            f"the model returns non-finite outputs for every row of {table.name}: no metrics"
        )
    if isinstance(out, ClassificationOutput):
        assert prediction.labels is not None
        truth = [_class_name(out, truth_cells[keep[i]], table, keep[i], target) for i in good.tolist()]
        predicted = [prediction.labels[i] for i in good.tolist()]
        probabilities = prediction.probabilities[good] if prediction.probabilities is not None else None
        from onnxlambda_cli.importer.metrics import classification_metrics

        metrics = classification_metrics(out.labels, truth, predicted, probabilities)
    else:
        assert prediction.values is not None
        from onnxlambda_cli.importer.metrics import regression_metrics

        y = np.array([float(truth_cells[keep[i]]) for i in good.tolist()], dtype=np.float64)  # type: ignore[arg-type]
        metrics = regression_metrics(y, prediction.values[good])
    return metrics, table.rows, fingerprint_rows


def choose_primary_metric(
    options: ImportOptions, output: ClassificationOutput | RegressionOutput, metrics: Sequence[Metric]
) -> str | None:
    if not metrics:
        return None
    wanted = options.primary_metric or ("accuracy" if isinstance(output, ClassificationOutput) else "mae")
    if wanted not in {m.name for m in metrics}:
        raise ImportInputError(
            f"--primary-metric {wanted!r} is not among the metrics ({', '.join(m.name for m in metrics)})"
        )
    return wanted


def _run_unvalidated(runtime: ModelRuntime, rows: Sequence[Row]) -> Prediction:
    """The model's outputs for rows the contract might refuse (an unseen category in a test set):
    metrics are about the model, so the rows are fed as the server would feed valid ones."""
    manifest = runtime.manifest
    columns: dict[str, Any] = {}
    for f in manifest.features:
        values = [r[f.name] for r in rows]
        if f.is_categorical:
            columns[f.name] = np.array([f.missing_string if v is None else v for v in values], dtype=object)
        else:
            columns[f.name] = np.array([np.nan if v is None else v for v in values], dtype=NP_DTYPES[f.dtype])
    return runtime.run(columns, len(rows))


def _class_name(out: ClassificationOutput, value: Value, table: Table, i: int, target: str) -> str:
    if isinstance(value, str) and value in out.labels:
        return value
    if (
        out.class_values is not None
        and isinstance(value, float)
        and value.is_integer()
        and int(value) in out.class_values
    ):
        return out.labels[out.class_values.index(int(value))]
    if isinstance(value, float) and value.is_integer() and str(int(value)) in out.labels:
        return str(int(value))
    raise ImportInputError(
        f"{table.name} line {table.lines[i]}: target {table.columns[target][i]!r} is not one of the model's "
        f"classes ({', '.join(out.labels)})"
    )


__all__ = [
    "baseline_of_outputs",
    "choose_primary_metric",
    "held_out_metrics",
    "pick_golden",
    "verify_nullable",
]
