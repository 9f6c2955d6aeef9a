"""The reference data's columns as the model's features: which column is the target, the
features' order, each column typed by the graph input it feeds, and each feature's contract
(types, ranges, categories, nullability) and drift baseline derived from the data.

Each check refuses with one line saying what is wrong and which flag fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from onnxlambda.contract.manifest import CategoricalBaseline, Feature, ModelInput, NumericBaseline
from onnxlambda.monitoring.baselines import categorical_baseline, numeric_baseline
from onnxlambda_cli.importer import contract
from onnxlambda_cli.importer.data import Row, Table, Value, number_column, target_column, text_column
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.graph import Graph
from onnxlambda_cli.importer.mlflow import NUMERIC_TYPES, MlflowModel
from onnxlambda_cli.importer.options import ImportOptions


def pick_target(options: ImportOptions, table: Table, mlflow: MlflowModel | None) -> str | None:
    if options.target is not None:
        if options.target not in table.header:
            raise ImportInputError(
                f"target column {options.target!r} is not in {table.name} "
                f"(columns: {', '.join(table.header)})"
            )
        return options.target
    if mlflow is not None and mlflow.target in table.header:
        return mlflow.target  # the MLflow signature's output column
    return None


def feature_order(
    options: ImportOptions, table: Table, target: str | None, mlflow: MlflowModel | None, graph: Graph
) -> list[str]:
    if options.features is not None:
        order, what = list(options.features), "--features"
    elif mlflow is not None and mlflow.columns is not None:
        order, what = list(mlflow.columns), "the MLflow signature"
    else:
        return [h for h in table.header if h != target]
    missing = [c for c in order if c not in table.header]
    if missing:
        raise ImportInputError(
            f"{what} names {', '.join(map(repr, missing))}, not a column of {table.name} "
            f"(columns: {', '.join(table.header)})"
        )
    if len(set(order)) != len(order):
        raise ImportInputError(f"{what} names a column twice: {', '.join(order)}")
    if target in order:
        raise ImportInputError(f"{what} includes the target column {target!r}: the target is not a feature")
    if (
        mlflow is not None
        and mlflow.tensors is not None
        and set(mlflow.tensors) != {t.name for t in graph.inputs}
    ):
        raise ImportInputError(
            f"the MLflow signature's tensors ({', '.join(mlflow.tensors)}) are not the graph's inputs "
            f"({', '.join(t.name for t in graph.inputs)})"
        )
    return order


def check_mlflow_types(mlflow: MlflowModel | None, dtypes: Mapping[str, str]) -> None:
    if mlflow is None or mlflow.columns is None:
        return
    for name, kind in mlflow.columns.items():
        numeric = kind in NUMERIC_TYPES
        if numeric != (dtypes[name] != "string"):
            raise ImportInputError(
                f"the MLflow signature says {name!r} is {kind}, but it feeds a {dtypes[name]} model input"
            )


def check_keys(options: ImportOptions, dtypes: Mapping[str, str]) -> None:
    for flag, keys in (
        ("--feature-description", options.feature_descriptions),
        ("--missing-string", options.missing_strings),
        ("--range", options.ranges),
        ("--nullable", dict.fromkeys(options.nullable)),
    ):
        unknown = [k for k in keys if k not in dtypes]
        if unknown:
            raise ImportInputError(
                f"{flag} names {', '.join(map(repr, unknown))}, which is not a feature ({', '.join(dtypes)})"
            )
    for name in options.missing_strings:
        if dtypes[name] != "string":
            raise ImportInputError(
                f"--missing-string {name}=...: {name!r} feeds a {dtypes[name]} input; "
                "a missing number is always NaN"
            )
    for name in options.ranges:
        if dtypes[name] == "string":
            raise ImportInputError(
                f"--range {name}=...: {name!r} is a string feature (its categories come from the data)"
            )


def typed_columns(table: Table, inputs: Sequence[ModelInput]) -> dict[str, list[Value]]:
    out: dict[str, list[Value]] = {}
    for tensor in inputs:
        for j, name in enumerate(tensor.features):
            if tensor.dtype == "string":
                out[name] = list(text_column(table, name))
                continue
            where = f"the {tensor.dtype} input {tensor.name!r}" + (
                f" (column {j} of {len(tensor.features)})" if len(tensor.features) > 1 else ""
            )
            out[name] = list(number_column(table, name, feeds=where, integer=tensor.dtype == "int64"))
    return out


def rows_of(order: Sequence[str], columns: Mapping[str, Sequence[Value]], n: int) -> list[Row]:
    return [{name: columns[name][i] for name in order} for i in range(n)]


def target_cells(table: Table, target: str | None) -> list[Value]:
    return [None] * table.rows if target is None else list(target_column(table, target))


def derive_features(  # noqa: PLR0917 - one call site, the pieces of one step
    options: ImportOptions,
    order: Sequence[str],
    dtypes: Mapping[str, Any],
    columns: Mapping[str, Sequence[Value]],
    graph: Graph,
    inputs: Sequence[ModelInput],
    notes: list[str],
) -> list[Feature]:
    features = []
    seen_strings = {v for n in order if dtypes[n] == "string" for v in columns[n] if isinstance(v, str)}
    for name in order:
        description = options.feature_descriptions.get(name, "")
        column = columns[name]
        if dtypes[name] == "string":
            token = options.missing_strings.get(name, "")
            feature = contract.string_feature(
                name,
                [v if isinstance(v, str) else None for v in column],
                description=description,
                missing=token,
            )
            note = _missing_token_note(name, column, graph, inputs, seen_strings)
            if note and feature.nullable and name not in options.missing_strings:
                notes.append(note)
        else:
            feature = contract.numeric_feature(
                name,
                dtypes[name],
                [v if not isinstance(v, str) else None for v in column],
                description=description,
                bounds=options.ranges.get(name),
            )
        if name in options.nullable and not feature.nullable:
            feature = replace(feature, nullable=True)  # still checked against the model below
        features.append(feature)
    return features


def _missing_token_note(
    name: str, column: Sequence[Value], graph: Graph, inputs: Sequence[ModelInput], seen: set[str]
) -> str | None:
    """A hint when a nullable string column will be fed '' and the graph may expect another token."""
    everything = set().union(*graph.vocabularies.values()) if graph.vocabularies else set()
    if "" in everything:  # the graph itself maps '' (SimpleImputer(missing_values="")): nothing to say
        return None
    missing = sum(v is None for v in column)
    note = f"column {name!r} has {missing} missing values; a missing {name!r} is fed to the model as ''"
    own = next(i for i in inputs if name in i.features)
    vocabulary = graph.vocabularies.get(own.name) if own.features == [name] else None
    unseen = sorted((everything if vocabulary is None else vocabulary) - seen)
    if unseen:
        shown = ", ".join(map(repr, unseen))
        note += (
            f". The graph's encoders know {shown}, which the data never holds: if the pipeline was "
            f"trained with missing values filled (e.g. fillna({unseen[0]!r})), pass --missing-string "
            f"{name}={unseen[0]}"
        )
    return note


def feature_baseline(feature: Feature, column: Sequence[Value]) -> NumericBaseline | CategoricalBaseline:
    if feature.is_categorical:
        return categorical_baseline([v if isinstance(v, str) else None for v in column])
    return numeric_baseline([None if v is None or isinstance(v, str) else float(v) for v in column])


__all__ = [
    "check_keys",
    "check_mlflow_types",
    "derive_features",
    "feature_baseline",
    "feature_order",
    "pick_target",
    "rows_of",
    "target_cells",
    "typed_columns",
]
