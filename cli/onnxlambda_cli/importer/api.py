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

This module runs the steps in order; options.py holds what goes in and out, columns.py step 2's
column checks and feature derivation, evidence.py step 3's runs of the model.
"""

from __future__ import annotations

import hashlib
import platform
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Final

from onnxlambda.contract.manifest import (
    Baselines,
    CategoricalBaseline,
    ClassificationOutput,
    GoldenSet,
    GoldenSpec,
    Lineage,
    Manifest,
    ManifestError,
    RegressionOutput,
    Training,
    as_json,
)
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.tensors import check_signature
from onnxlambda_cli.importer import contract
from onnxlambda_cli.importer.card import model_card
from onnxlambda_cli.importer.columns import (
    check_keys,
    check_mlflow_types,
    derive_features,
    feature_baseline,
    feature_order,
    pick_target,
    rows_of,
    target_cells,
    typed_columns,
)
from onnxlambda_cli.importer.data import fingerprint, read_table
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.evidence import (
    baseline_of_outputs,
    choose_primary_metric,
    held_out_metrics,
    pick_golden,
    verify_nullable,
)
from onnxlambda_cli.importer.graph import plan_outputs, read_graph
from onnxlambda_cli.importer.layout import map_columns
from onnxlambda_cli.importer.mlflow import MlflowModel, is_mlflow_dir, read_mlflow_dir
from onnxlambda_cli.importer.options import ImportOptions, ImportResult
from onnxlambda_cli.importer.writer import REPO_ROOT, write_directory

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*$"
VERSION_PATTERN: Final = r"^\d+\.\d+\.\d+$"
_GENERIC_STEMS: Final = frozenset({"model", "mlmodel", "onnx", "export"})


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
    target = pick_target(options, table, source.mlflow)
    features_order = feature_order(options, table, target, source.mlflow, graph)
    described = f"{table.name} without the target {target!r}" if target else table.name
    inputs = map_columns(graph.inputs, features_order, described)
    dtypes = {n: i.dtype for i in inputs for n in i.features}
    check_mlflow_types(source.mlflow, dtypes)
    check_keys(options, dtypes)
    columns = typed_columns(table, inputs)
    notes: list[str] = []
    features = derive_features(options, features_order, dtypes, columns, graph, inputs, notes)
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
    rows = rows_of(features_order, columns, table.rows)
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
            features={f.name: feature_baseline(f, columns[f.name]) for f in features},
            output=CategoricalBaseline(count=0, missing=0, counts={}),
        ),
    )
    try:
        check_signature(manifest, graph.session.get_inputs(), graph.session.get_outputs())
    except Exception as exc:  # a form the importer maps but the server would not load: say so
        raise ImportInputError(f"the server would not load this model: {exc}") from None
    features = verify_nullable(manifest, graph, rows, options.seed, notes)
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
    output_baseline = baseline_of_outputs(runtime, pool)
    golden_cases = pick_golden(options, runtime, pool, notes)
    metrics, test_rows, test_fingerprint_rows = held_out_metrics(
        options, runtime, features_order, dtypes, target, notes
    )
    fingerprint_columns = [*features_order, *([target] if target else [])]
    reference = [
        {**r, **({target: v} if target else {})}
        for r, v in zip(rows, target_cells(table, target), strict=True)
    ]
    manifest = replace(
        manifest,
        metrics=metrics,
        primary_metric=choose_primary_metric(options, output, metrics),
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


__all__ = ["default_name", "import_model"]
