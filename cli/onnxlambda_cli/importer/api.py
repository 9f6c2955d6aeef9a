"""`import_model`: the user's ONNX file (or MLflow directory) and reference data -> a model directory.

The steps, each refusing bad input with one line that says what and how to fix it:
 1. load the file as the server will (graph.py): external data, a graph onnxruntime refuses,
    input or output types the server cannot handle are refused here, not at deploy time;
 2. read the reference CSV and map its columns onto the graph's inputs (data.py, layout.py);
 3. derive the contract (contract.py) and check it by running the model the way the server will
    (onnxlambda.serving: the same Validator, input layout and output reader), which also gives
    nullability, the output baseline, the golden set and the metrics;
 4. write the directory (writer.py): model.onnx byte for byte, manifest.json, golden.json,
    MODEL_CARD.md, openapi.json.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import (
    Baselines,
    CategoricalBaseline,
    ClassificationOutput,
    Feature,
    GoldenCase,
    GoldenSet,
    GoldenSpec,
    Lineage,
    Manifest,
    ManifestError,
    Metric,
    ModelInput,
    NumericBaseline,
    RegressionOutput,
    Training,
    as_json,
)
from onnxlambda.monitoring.baselines import categorical_baseline, numeric_baseline, sig
from onnxlambda.serving.dataplane import answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.tensors import NP_DTYPES, Prediction, check_signature
from onnxlambda.serving.validation import Validator
from onnxlambda_cli.importer import contract
from onnxlambda_cli.importer.card import model_card
from onnxlambda_cli.importer.data import (
    Row,
    Table,
    Value,
    fingerprint,
    number_column,
    read_table,
    target_column,
    text_column,
)
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.graph import Graph, plan_outputs, read_graph
from onnxlambda_cli.importer.layout import map_columns
from onnxlambda_cli.importer.mlflow import NUMERIC_TYPES, MlflowModel, is_mlflow_dir, read_mlflow_dir
from onnxlambda_cli.importer.writer import REPO_ROOT, write_directory

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*$"
VERSION_PATTERN: Final = r"^\d+\.\d+\.\d+$"
VALUE_DECIMALS: Final = 4  # regression values in golden.json (the golden tolerance is 1e-3)
CHUNK: Final = 10_000  # rows per onnxruntime call when scoring the reference data
_GENERIC_STEMS: Final = frozenset({"model", "mlmodel", "onnx", "export"})


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """What `onnxlambda import` takes (the command's flags, one field each)."""

    source: Path  # the .onnx file as exported, or an MLflow model directory (onnx flavor)
    data: Path  # reference CSV with a header: the training data, or a sample of it
    target: str | None = None  # the label/value column in `data` (and `test`): not a feature
    test: Path | None = None  # held-out CSV with the same columns and the target -> metrics
    class_names: list[str] | None = None  # names for integer labels, in the model's class order
    name: str | None = None  # default: from the file (or directory) name
    version: str = "1.0.0"
    description: str = ""
    features: list[str] | None = None  # feature columns in the model's order (default: header)
    feature_descriptions: dict[str, str] = field(default_factory=dict)
    missing_strings: dict[str, str] = field(default_factory=dict)  # column -> token a null is fed as
    nullable: list[str] = field(default_factory=list)  # accept nulls though the data has none (checked)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (min, max)
    output_name: str = "prediction"  # a regression value's name in answers
    created_at: str | None = None  # default: now (UTC); fixed for byte-reproducible output
    out: Path | None = None  # default: models/<name>
    golden_size: int = 32
    seed: int = 0
    dataset: str | None = None  # how the data is called in the card (default: the file name)
    data_source: str | None = None  # where it came from (default: the file names)
    primary_metric: str | None = None  # default: accuracy (classification), mae (regression)
    intended_use: str = ""
    limitations: str = ""
    why: str | None = None  # the reason for this version: the first CHANGELOG.md entry of a new model
    # Used by the example models' training scripts (in-process only):
    train_script: Path | None = None  # the script that trained and exported the model
    library_versions: dict[str, str] | None = None  # default: onnx, onnxruntime, numpy, python
    golden_instances: list[Row] | None = None  # the golden rows, when the script chooses them
    openapi: bool = True


@dataclass(frozen=True, slots=True)
class ImportResult:
    out: Path
    manifest: Manifest
    golden: GoldenSet
    notes: list[str]
    written: list[Path]


@dataclass(slots=True)
class _Source:
    path: Path  # the .onnx file
    label: str  # how lineage names it: the file name, or <mlflow dir>/<file>
    mlflow: MlflowModel | None


def import_model(options: ImportOptions) -> ImportResult:
    try:
        return _import(options)
    except ManifestError as exc:  # e.g. a column name with a control character in it
        raise ImportInputError(f"the derived contract is not a valid manifest: {exc}") from None


def _import(options: ImportOptions) -> ImportResult:
    source = _resolve_source(options.source)
    model_bytes = source.path.read_bytes()
    graph = read_graph(model_bytes, source.label)
    name = options.name or default_name(options.source)
    _check_identity(name, options.version)
    created_at = _created_at(options.created_at)
    table = read_table(options.data)
    target = _target(options, table, source.mlflow)
    features_order = _feature_order(options, table, target, source.mlflow, graph)
    described = f"{table.name} without the target {target!r}" if target else table.name
    inputs = map_columns(graph.inputs, features_order, described)
    dtypes = {n: i.dtype for i in inputs for n in i.features}
    _check_mlflow_types(source.mlflow, dtypes)
    _check_keys(options, dtypes)
    columns = _typed_columns(table, inputs)
    notes: list[str] = []
    features = _features(options, features_order, dtypes, columns, graph, inputs, notes)
    plan = plan_outputs(graph, options.class_names is not None)
    output: ClassificationOutput | RegressionOutput = (
        contract.classification_output(plan, graph, options.class_names)
        if plan.kind == "classification"
        else contract.regression_output(plan, options.output_name)
    )
    if (
        isinstance(output, ClassificationOutput)
        and output.class_values is not None
        and not options.class_names
    ):
        notes.append(
            f"class names are the model's integer labels ({', '.join(output.labels)}, from "
            f"{graph.classes_from}); pass --class-names to name them"
        )
    rows = _rows(features_order, columns, table.rows)
    sha = hashlib.sha256(model_bytes).hexdigest()
    out = options.out or Path("models") / name

    manifest = Manifest(
        name=name,
        version=options.version,
        description=options.description,
        sha256=sha,
        features=features,
        inputs=inputs,
        output=output,
        training=Training(
            dataset="", source="", fingerprint_sha256="0" * 64, rows=0, train_rows=0, test_rows=0
        ),
        lineage=Lineage(created_at=created_at),
        baselines=Baselines(
            features={f.name: _feature_baseline(f, columns[f.name]) for f in features},
            output=CategoricalBaseline(count=0, missing=0, counts={}),
        ),
    )
    try:
        check_signature(manifest, graph.session.get_inputs(), graph.session.get_outputs())
    except Exception as exc:  # a form the importer maps but the server would not load: say so
        raise ImportInputError(f"the server would not load this model: {exc}") from None
    features = _verify_nullable(manifest, graph, rows, options.seed, notes)
    manifest = replace(manifest, features=features)
    runtime = ModelRuntime(manifest, graph.session, out)
    nullable = {f.name for f in features if f.nullable}
    pool = [r for r in rows if all(v is not None or k in nullable for k, v in r.items())]
    if len(pool) < len(rows):
        notes.append(
            f"{len(rows) - len(pool)} reference rows have missing values in required features; they are "
            "left out of the golden set and the output baseline"
        )
    if not pool:
        raise ImportInputError(
            f"every row of {table.name} has a missing value in a required feature: nothing to score"
        )
    output_baseline = _output_baseline(runtime, pool)
    golden_cases = _golden(options, runtime, pool, notes)
    metrics, test_rows, test_fingerprint_rows = _test_metrics(
        options, runtime, features_order, dtypes, target, notes
    )
    fingerprint_columns = [*features_order, *([target] if target else [])]
    reference = [
        {**r, **({target: v} if target else {})}
        for r, v in zip(rows, _target_cells(table, target), strict=True)
    ]
    manifest = replace(
        manifest,
        metrics=metrics,
        primary_metric=_primary_metric(options, output, metrics),
        training=Training(
            dataset=options.dataset or table.name,
            source=options.data_source
            or (table.name if options.test is None else f"{table.name} + {options.test.name}"),
            fingerprint_sha256=fingerprint(fingerprint_columns, reference + test_fingerprint_rows),
            rows=len(rows) + test_rows,
            train_rows=len(rows),
            test_rows=test_rows,
            seed=options.seed,
            library_versions=options.library_versions or _library_versions(),
        ),
        lineage=_lineage(created_at, source.label, options.train_script),
        baselines=Baselines(features=manifest.baselines.features, output=output_baseline),
        golden=GoldenSpec(),
    )
    golden = GoldenSet(model_name=name, model_version=options.version, model_sha256=sha, cases=golden_cases)
    card = model_card(
        manifest,
        len(model_bytes),
        intended_use=options.intended_use,
        limitations=options.limitations,
        notes=notes,
    )
    written = write_directory(out, model_bytes, manifest, golden, card, openapi=options.openapi)
    written += _changelog(out, manifest, options.why, notes)
    return ImportResult(out, manifest, golden, notes, written)


# -- source, names ------------------------------------------------------------------------------


def _resolve_source(path: Path) -> _Source:
    if is_mlflow_dir(path):
        mlflow = read_mlflow_dir(path)
        return _Source(
            mlflow.onnx_file, f"{path.name}/{mlflow.onnx_file.relative_to(path).as_posix()}", mlflow
        )
    if path.is_dir():
        raise ImportInputError(
            f"{path} is a directory without an MLmodel file: pass the .onnx file or an MLflow model directory"
        )
    if not path.is_file():
        raise ImportInputError(f"no such model file: {path}")
    return _Source(path, path.name, None)


def default_name(source: Path) -> str:
    """A model name from the file or directory name: lowercased, runs of other characters as "-";
    a generic file name ("model.onnx") gives way to its directory's name."""
    stem = source.name if source.is_dir() else source.stem
    if stem.lower() in _GENERIC_STEMS:
        stem = source.resolve().parent.name
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name or "model"


def _check_identity(name: str, model_version: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ImportInputError(
            f"model name {name!r} must match {NAME_PATTERN} (lowercase letters, digits, '-' and '_'; "
            "it names the URL path, the layer and the stack's parameters): pass --name"
        )
    if not re.fullmatch(VERSION_PATTERN, model_version):
        raise ImportInputError(f"--version {model_version!r} must be MAJOR.MINOR.PATCH, e.g. 1.0.0")


def _created_at(value: str | None) -> str:
    if value is None:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ImportInputError(
            f"--created-at {value!r} is not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
        ) from None
    return value


# -- columns --------------------------------------------------------------------------------------


def _target(options: ImportOptions, table: Table, mlflow: MlflowModel | None) -> str | None:
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


def _feature_order(
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


def _check_mlflow_types(mlflow: MlflowModel | None, dtypes: Mapping[str, str]) -> None:
    if mlflow is None or mlflow.columns is None:
        return
    for name, kind in mlflow.columns.items():
        numeric = kind in NUMERIC_TYPES
        if numeric != (dtypes[name] != "string"):
            raise ImportInputError(
                f"the MLflow signature says {name!r} is {kind}, but it feeds a {dtypes[name]} model input"
            )


def _check_keys(options: ImportOptions, dtypes: Mapping[str, str]) -> None:
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


def _typed_columns(table: Table, inputs: Sequence[ModelInput]) -> dict[str, list[Value]]:
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


def _rows(order: Sequence[str], columns: Mapping[str, Sequence[Value]], n: int) -> list[Row]:
    return [{name: columns[name][i] for name in order} for i in range(n)]


def _target_cells(table: Table, target: str | None) -> list[Value]:
    return [None] * table.rows if target is None else list(target_column(table, target))


# -- features -------------------------------------------------------------------------------------


def _features(  # noqa: PLR0917 - one call site, the pieces of one step
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


def _feature_baseline(feature: Feature, column: Sequence[Value]) -> NumericBaseline | CategoricalBaseline:
    if feature.is_categorical:
        return categorical_baseline([v if isinstance(v, str) else None for v in column])
    return numeric_baseline([None if v is None or isinstance(v, str) else float(v) for v in column])


# -- running the model the server's way --------------------------------------------------------------


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


def _verify_nullable(
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


def _output_baseline(runtime: ModelRuntime, pool: Sequence[Row]) -> NumericBaseline | CategoricalBaseline:
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


def _golden(
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


# -- test set -------------------------------------------------------------------------------------


def _test_metrics(  # noqa: PLR0917 - one call site, the pieces of one step
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
    columns = _typed_columns(table, runtime.manifest.inputs)
    truth_cells = _target_cells(table, target)
    rows = _rows(order, columns, table.rows)
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


def _primary_metric(
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


def _changelog(out: Path, manifest: Manifest, why: str | None, notes: list[str]) -> list[Path]:
    """A new model gets a CHANGELOG.md; an existing one is the releaser's to extend."""
    from onnxlambda_cli.changelog import new_changelog

    path = out / "CHANGELOG.md"
    if not path.exists():
        path.write_text(new_changelog(as_json(manifest), why), encoding="utf-8", newline="\n")
        if why is None:
            notes.append(f"{path} says why this version exists: NOT GIVEN (pass --why, or edit the file)")
        return [path]
    if f"## {manifest.version} - " not in path.read_text(encoding="utf-8"):
        notes.append(
            f"{path} has no entry for {manifest.version}: make changelog MODEL={manifest.name} "
            'OLD=git:<previous release> WHY="..."'
        )
    return []


# -- provenance -----------------------------------------------------------------------------------


def _library_versions() -> dict[str, str]:
    return {
        "numpy": version("numpy"),
        "onnx": version("onnx"),
        "onnxruntime": version("onnxruntime"),
        "python": platform.python_version(),
    }


def _lineage(created_at: str, source_file: str, train_script: Path | None) -> Lineage:
    if train_script is None:
        return Lineage(
            kind="imported", created_at=created_at, source_file=source_file, tool="onnxlambda import"
        )
    data = train_script.read_bytes()
    return Lineage(
        kind="trained",
        created_at=created_at,
        source_file=source_file,
        train_script=train_script.resolve().relative_to(REPO_ROOT).as_posix(),
        train_script_sha256=hashlib.sha256(data).hexdigest(),
        code_revision=hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest(),
        tool="onnxlambda import",
    )


__all__ = ["ImportOptions", "ImportResult", "default_name", "import_model"]
