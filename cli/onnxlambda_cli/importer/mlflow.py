"""An MLflow model directory saved with the onnx flavor (`mlflow.onnx.save_model`), read as files.

`MLmodel` (YAML) names the .onnx file (`flavors.onnx.data`) and usually a signature. A signature
inferred from a DataFrame (`infer_signature(X, y)`) is column-based: it gives the feature columns,
in order, with their types; its output names the target column. A tensor-based signature names
the graph's inputs. Both are checked against the data and the graph; mlflow itself is not needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from onnxlambda_cli.importer.errors import ImportInputError

MLMODEL: Final = "MLmodel"
# MLflow column types and whether the column is a number (else text) for the model.
NUMERIC_TYPES: Final = frozenset({"boolean", "integer", "long", "float", "double"})
TEXT_TYPES: Final = frozenset({"string"})


@dataclass(frozen=True, slots=True)
class MlflowModel:
    directory: Path
    onnx_file: Path
    columns: dict[str, str] | None  # column-based signature: name -> MLflow type, in order
    tensors: list[str] | None  # tensor-based signature: the graph input names it declares
    target: str | None  # the output column's name (column-based output signature)


def is_mlflow_dir(path: Path) -> bool:
    return path.is_dir() and (path / MLMODEL).is_file()


def read_mlflow_dir(directory: Path) -> MlflowModel:
    """The onnx file and the signature of an MLflow model directory, or a refusal saying why."""
    try:
        mlmodel = yaml.safe_load((directory / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ImportInputError(f"{directory / MLMODEL} cannot be read as YAML: {exc}") from None
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict) or "onnx" not in flavors:
        names = ", ".join(flavors) if isinstance(flavors, dict) else "none"
        raise ImportInputError(
            f"{directory} is an MLflow model without the onnx flavor (flavors: {names}): save it "
            "with mlflow.onnx.save_model(onnx_model, path, ...), or import its .onnx file directly"
        )
    data = flavors["onnx"].get("data") if isinstance(flavors["onnx"], dict) else None
    onnx_file = directory / str(data or "model.onnx")
    if not onnx_file.is_file():
        raise ImportInputError(
            f"the onnx flavor of {directory / MLMODEL} names {data!r}, which is not a file there"
        )
    signature = mlmodel.get("signature") or {}
    inputs = _spec_list(signature.get("inputs"), "inputs")
    outputs = _spec_list(signature.get("outputs"), "outputs")
    columns: dict[str, str] | None = None
    tensors: list[str] | None = None
    if inputs and all(i.get("type") == "tensor" for i in inputs):
        tensors = [str(i.get("name")) for i in inputs]
    elif inputs:
        columns = {}
        for spec in inputs:
            name, kind = spec.get("name"), spec.get("type")
            if not isinstance(name, str) or kind not in NUMERIC_TYPES | TEXT_TYPES:
                raise ImportInputError(
                    f"the MLflow signature's input {name!r} has type {kind!r}; supported column types: "
                    f"{', '.join(sorted(NUMERIC_TYPES | TEXT_TYPES))}"
                )
            columns[name] = str(kind)
    target = None
    if outputs and len(outputs) == 1 and outputs[0].get("type") != "tensor":
        target = outputs[0].get("name") if isinstance(outputs[0].get("name"), str) else None
    return MlflowModel(directory, onnx_file, columns, tensors, target)


def _spec_list(raw: object, what: str) -> list[dict[str, Any]]:
    # MLmodel stores each side of the signature as a JSON string.
    if raw is None:
        return []
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ImportInputError(f"the MLflow signature's {what} is not JSON: {raw!r}") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ImportInputError(f"the MLflow signature's {what} is not a list of column or tensor specs")
    return specs


__all__ = ["MLMODEL", "NUMERIC_TYPES", "TEXT_TYPES", "MlflowModel", "is_mlflow_dir", "read_mlflow_dir"]
