"""Shared helpers for the example-model training scripts (`models/<name>/train.py`).

A training script trains a scikit-learn pipeline, exports it with skl2onnx, checks the export
against the pipeline, and then hands the exported file and its data to `onnxlambda import`, the
same path a user's own model takes (onnxlambda_cli.importer): the importer writes

    model.onnx      the exported bytes, unchanged
    manifest.json   onnxlambda.contract.manifest.Manifest (contract derived from the data)
    golden.json     onnxlambda.contract.manifest.GoldenSet (computed by the served model)
    MODEL_CARD.md   human-readable summary generated from the manifest
    openapi.json    the per-model API contract

Reproducibility: all artifacts are a pure function of (training script, this file, the importer,
pinned library versions). The ONNX graph gets a fixed name and sorted opsets, and the release
time is a constant in the training script, so re-running a script gives byte-identical files.

Request-row convention (shared with the serving code): an *instance* is a dict mapping feature
name to a JSON value, ``None`` for a missing value. The ONNX model is fed float32 ``NaN`` for a
missing number and ``""`` for a missing string; the sklearn pipeline is fed the same values
(float64 ``NaN`` and ``""``) so the two can be compared directly.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from onnx.helper import make_opsetid
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType

from onnxlambda.contract.manifest import GoldenSpec
from onnxlambda_cli.importer import ImportOptions, ImportResult, import_model
from onnxlambda_cli.importer.contract import pick_rows, plausible_range

REPO_ROOT = Path(__file__).resolve().parents[1]

# ONNX opsets the example models are exported with (pinned so a skl2onnx upgrade cannot
# silently change the graph).
TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}

Instance = dict[str, float | int | str | None]
FloatArray = npt.NDArray[np.float64]

__all__ = [
    "Instance",
    "ModelSpec",
    "TrainedModel",
    "allowed_range",
    "pick_rows",
    "run",
    "sklearn_frame",
]


def allowed_range(values: Sequence[float | None]) -> tuple[float, float]:
    """The range `onnxlambda import` derives for a numeric column (to build edge-case rows)."""
    column = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return plausible_range(column, non_negative=bool(np.nanmin(column) >= 0))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelSpec:
    """What a training script knows about its model besides the fitted pipeline."""

    name: str
    version: str
    description: str
    released_at: str
    script: Path
    dataset: str
    source: str
    seed: int
    primary_metric: str
    intended_use: str
    limitations: str


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline plus the exact data it was fitted and evaluated on."""

    pipeline: Any
    features: dict[str, str]  # feature name -> description, in the model's input order
    strings: frozenset[str]  # the string features (the others are numbers)
    target: str
    classifier: bool
    train_rows: list[Instance]  # features and target
    test_rows: list[Instance]
    golden_rows: list[Instance]  # features only
    onnx_options: Any = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # overrides of the derived ones
    output_name: str = "prediction"


def sklearn_frame(rows: Sequence[Instance], features: Sequence[str], strings: frozenset[str]) -> Any:
    """The pandas DataFrame the sklearn pipeline is fitted on / predicts from.

    Numbers: float64 with NaN for missing. Strings: object with "" for missing (same convention
    as the ONNX input).
    """
    data: dict[str, Any] = {}
    for name in features:
        column = [row[name] for row in rows]
        if name in strings:
            data[name] = np.array(["" if v is None else str(v) for v in column], dtype=object)
        else:
            data[name] = np.array([np.nan if v is None else float(v) for v in column], dtype=np.float64)
    return pd.DataFrame(data)


# --------------------------------------------------------------------------- export and check


def export_onnx(model: TrainedModel, *, name: str) -> bytes:
    """Convert the fitted pipeline with skl2onnx: one input per feature named like the feature."""
    initial_types = [
        (n, StringTensorType([None, 1]) if n in model.strings else FloatTensorType([None, 1]))
        for n in model.features
    ]
    onx = convert_sklearn(
        model.pipeline,
        name=name,
        initial_types=initial_types,
        options=model.onnx_options,
        target_opset=TARGET_OPSET,
    )
    onx.doc_string = ""
    # skl2onnx emits opset_import in set order (varies with PYTHONHASHSEED): sort it.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    onx.opset_import.extend(make_opsetid(domain, ver) for domain, ver in opsets)
    data: bytes = onx.SerializeToString(deterministic=True)
    return data


def _onnx_outputs(model_bytes: bytes, model: TrainedModel, rows: Sequence[Instance]) -> list[Any]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds: dict[str, Any] = {}
    for name in model.features:
        column = [row[name] for row in rows]
        if name in model.strings:
            feeds[name] = np.array(["" if v is None else str(v) for v in column], dtype=object).reshape(-1, 1)
        else:
            values = [np.nan if v is None else float(v) for v in column]
            feeds[name] = np.array(values, dtype=np.float32).reshape(-1, 1)
    outputs: list[Any] = sess.run(None, feeds)
    return outputs


def check_export(model_bytes: bytes, model: TrainedModel, rows: Sequence[Instance], context: str) -> None:
    """Fail loudly if the exported graph disagrees with the sklearn pipeline on `rows`."""
    tolerance = GoldenSpec()
    frame = sklearn_frame(rows, list(model.features), model.strings)
    outputs = _onnx_outputs(model_bytes, model, rows)
    if model.classifier:
        labels, probabilities = outputs[0], np.asarray(outputs[1], dtype=np.float64)
        if [str(x) for x in labels] != [str(x) for x in model.pipeline.predict(frame)]:
            raise AssertionError(f"{context}: ONNX and sklearn labels differ")
        diff = float(np.max(np.abs(probabilities - model.pipeline.predict_proba(frame))))
        limit = tolerance.probability_tolerance
    else:
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        diff = float(np.max(np.abs(values - model.pipeline.predict(frame))))
        limit = tolerance.value_tolerance
    if not diff <= limit:
        raise AssertionError(f"{context}: max difference {diff:.3g} between ONNX and sklearn")


# --------------------------------------------------------------------------- packaging


def library_versions() -> dict[str, str]:
    return {
        "numpy": version("numpy"),
        "onnx": version("onnx"),
        "onnxruntime": version("onnxruntime"),
        "pandas": version("pandas"),
        "python": platform.python_version(),
        "scikit-learn": version("scikit-learn"),
        "skl2onnx": version("skl2onnx"),
    }


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Instance]) -> None:
    """A CSV as a user would hand it over: a header, empty cells for missing values."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])


def import_trained(spec: ModelSpec, model: TrainedModel, out_dir: Path) -> ImportResult:
    """Export, check, and import through `onnxlambda import` (the user's path) into `out_dir`."""
    model_bytes = export_onnx(model, name=spec.name)
    for rows, what in ((model.train_rows, "train split"), (model.test_rows, "test split")):
        check_export(model_bytes, model, rows, what)
    check_export(model_bytes, model, model.golden_rows, "golden set")
    columns = [*model.features, model.target]
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-") as tmp:
        work = Path(tmp)
        (work / "model.onnx").write_bytes(model_bytes)
        write_csv(work / "reference.csv", columns, model.train_rows)
        write_csv(work / "test.csv", columns, model.test_rows)
        return import_model(
            ImportOptions(
                source=work / "model.onnx",
                data=work / "reference.csv",
                target=model.target,
                test=work / "test.csv",
                name=spec.name,
                version=spec.version,
                description=spec.description,
                feature_descriptions=dict(model.features),
                ranges=dict(model.ranges),
                output_name=model.output_name,
                created_at=spec.released_at,
                out=out_dir,
                seed=spec.seed,
                primary_metric=spec.primary_metric,
                dataset=spec.dataset,
                data_source=spec.source,
                intended_use=spec.intended_use,
                limitations=spec.limitations,
                train_script=spec.script,
                library_versions=library_versions(),
                golden_instances=model.golden_rows,
            )
        )


def run(
    argv: Sequence[str] | None,
    spec: ModelSpec,
    train: Callable[[ModelSpec], TrainedModel],
) -> Path:
    """CLI entry point shared by the training scripts: `train.py [--out DIR]`."""
    parser = argparse.ArgumentParser(description=f"Train and export the {spec.name!r} example model.")
    parser.add_argument(
        "--out",
        type=Path,
        default=spec.script.parent,
        help="output directory (default: the script's directory)",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    result = import_trained(spec, train(spec), out_dir)
    metrics = ", ".join(f"{m.name}={m.value:g}" for m in result.manifest.metrics)
    print(f"{spec.name} {spec.version}: {metrics} -> {out_dir}")
    return out_dir
