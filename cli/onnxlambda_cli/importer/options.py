"""What `onnxlambda import` takes (`ImportOptions`, one field per flag) and gives back (`ImportResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onnxlambda.contract.manifest import GoldenSet, Manifest
from onnxlambda_cli.importer.data import Row


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


__all__ = ["ImportOptions", "ImportResult"]
