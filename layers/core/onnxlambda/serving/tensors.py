"""Between validated columns and the model's own tensors, both ways, driven by the manifest.

`InputLayout` places each feature's column where the graph wants it (one [N, 1] tensor per
feature, a packed [N, F] matrix, or a mix); `OutputReader` turns whatever the export produced
(int64 or string labels, a [N, C] probability tensor or a ZipMap list of maps, a [N] or [N, 1]
regression tensor) into one `Prediction` in the manifest's vocabulary. `check_signature` runs at
load: a model whose graph does not match its manifest never reports ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, ModelInput

NP_DTYPES: Final[dict[str, npt.DTypeLike]] = {
    "float32": np.float32,
    "float64": np.float64,
    "int64": np.int64,
    "string": object,
}
ORT_TYPES: Final = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "string": "tensor(string)",
}
_PROBABILITY_TYPES: Final = {"tensor(float)", "tensor(double)"}

Columns = Mapping[str, npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model outputs for N rows in the manifest's vocabulary."""

    # classification: labels (N,) as class names, probabilities (N, C) in `labels` order or None;
    # regression: values (N,)
    labels: list[str] | None
    probabilities: npt.NDArray[np.float32] | None
    values: npt.NDArray[np.float64] | None


class InputLayout:
    """Feeds: each ONNX input built from its features' validated 1-D columns."""

    def __init__(self, inputs: Sequence[ModelInput]) -> None:
        self._inputs = list(inputs)

    def feeds(self, columns: Columns, n: int) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        for spec in self._inputs:
            if len(spec.features) == 1:
                column = columns[spec.features[0]]
                out[spec.name] = column.reshape(n, 1) if spec.rank == 2 else column.reshape(n)
                continue
            # Packed: columns are already the tensor's dtype, so this is one copy per feature.
            matrix = np.empty((n, len(spec.features)), dtype=NP_DTYPES[spec.dtype])
            for j, name in enumerate(spec.features):
                matrix[:, j] = columns[name]
            out[spec.name] = matrix
        return out


class OutputReader:
    """Which graph outputs to fetch, and how to read them."""

    def __init__(self, manifest: Manifest) -> None:
        out = manifest.output
        self._output = out
        if isinstance(out, ClassificationOutput):
            self.names = [t for t in (out.label_tensor, out.probability_tensor) if t is not None]
            self._labels = np.array(out.labels, dtype=object)
            values = out.class_values
            self._keys: list[Any] = list(values) if values is not None else list(out.labels)
            self._name_of = dict(zip(self._keys, out.labels, strict=True))
            # Labels 0..C-1 (most integer exports): the name is an index lookup, no dict per row.
            self._dense = values is not None and values == list(range(len(values)))
        else:
            self.names = [out.value_tensor]

    def read(self, outputs: Sequence[Any], n: int) -> Prediction:
        out = self._output
        if not isinstance(out, ClassificationOutput):
            values = np.asarray(outputs[0], dtype=np.float64)
            if values.size != n:
                raise ValueError(f"regression output has {values.size} values for {n} rows")
            return Prediction(labels=None, probabilities=None, values=values.reshape(n))
        got = dict(zip(self.names, outputs, strict=True))
        probabilities = None
        if out.probability_tensor is not None:
            probabilities = self._probabilities(got[out.probability_tensor], n)
        if out.label_tensor is not None:
            labels = self._names(np.asarray(got[out.label_tensor]).reshape(-1))
        else:
            assert probabilities is not None
            labels = self._labels[np.argmax(probabilities, axis=1)].tolist() if n else []
        if len(labels) != n:
            raise ValueError(f"label output has {len(labels)} values for {n} rows")
        return Prediction(labels=labels, probabilities=probabilities, values=None)

    def _probabilities(self, raw: Any, n: int) -> npt.NDArray[np.float32]:
        assert isinstance(self._output, ClassificationOutput)
        width = len(self._keys)
        if self._output.probability_format == "zipmap":
            # A list of {class value: probability} maps, one per row (ZipMap's seq(map)).
            keys = self._keys
            flat = [row[k] for row in raw for k in keys]
            return np.array(flat, dtype=np.float32).reshape(n, width)
        probs = np.asarray(raw, dtype=np.float32)
        if probs.shape != (n, width):
            raise ValueError(f"probability output has shape {probs.shape}, expected ({n}, {width})")
        return probs

    def _names(self, raw: npt.NDArray[Any]) -> list[str]:
        if (
            self._dense
            and raw.dtype.kind in "iu"
            and (raw.size == 0 or (raw.min() >= 0 and raw.max() < len(self._labels)))
        ):
            names: list[str] = self._labels[raw].tolist()
            return names
        name_of = self._name_of
        return [name_of.get(v, str(v)) for v in raw.tolist()]


def check_signature(manifest: Manifest, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
    """The graph's inputs and outputs (onnxruntime NodeArg-likes: name, type, shape) against the
    manifest; a ModelLoadError names every mismatch, so the 503 says what to fix."""
    problems = _input_problems(manifest, {i.name: i for i in inputs})
    problems += _output_problems(manifest, {o.name: o for o in outputs})
    if problems:
        graph = f"graph inputs {[i.name for i in inputs]}, outputs {[o.name for o in outputs]}"
        raise ModelLoadError(f"the model does not match its manifest: {'; '.join(problems)} ({graph})")


def _input_problems(manifest: Manifest, graph: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    wanted = {i.name: i for i in manifest.inputs}
    for name in graph.keys() - wanted.keys():
        problems.append(f"graph input {name!r} is fed by no manifest input")
    for name, spec in wanted.items():
        node = graph.get(name)
        if node is None:
            problems.append(f"manifest input {name!r} is not a graph input")
            continue
        if node.type != ORT_TYPES[spec.dtype]:
            problems.append(f"input {name!r} is {node.type} in the graph, {spec.dtype} in the manifest")
        shape = list(node.shape or [])
        if shape and len(shape) != spec.rank:
            problems.append(f"input {name!r} has rank {len(shape)} in the graph, {spec.rank} in the manifest")
        elif len(shape) == 2 and isinstance(shape[1], int) and shape[1] != len(spec.features):
            problems.append(
                f"input {name!r} is {shape[1]} wide in the graph; the manifest places "
                f"{len(spec.features)} features in it"
            )
    return problems


def _output_problems(manifest: Manifest, graph: Mapping[str, Any]) -> list[str]:
    out = manifest.output
    problems: list[str] = []
    wanted = [out.value_tensor] if not isinstance(out, ClassificationOutput) else []
    if isinstance(out, ClassificationOutput):
        wanted = [t for t in (out.label_tensor, out.probability_tensor) if t is not None]
    for name in wanted:
        if name not in graph:
            problems.append(f"output {name!r} is not a graph output")
    if problems:
        return problems
    if not isinstance(out, ClassificationOutput):
        return _value_problems(out.value_tensor, graph[out.value_tensor])
    if out.label_tensor is not None:
        label = graph[out.label_tensor]
        expected = "tensor(int64)" if out.class_values is not None else "tensor(string)"
        if label.type != expected:
            problems.append(
                f"label output {out.label_tensor!r} is {label.type}; the manifest's "
                f"{'class_values' if out.class_values is not None else 'labels'} need {expected}"
            )
    if out.probability_tensor is not None:
        problems += _probability_problems(out, graph[out.probability_tensor])
    return problems


def _value_problems(name: str, node: Any) -> list[str]:
    problems = []
    if node.type not in _PROBABILITY_TYPES:
        problems.append(f"value output {name!r} is {node.type}, not a float tensor")
    shape = list(node.shape or [])
    if len(shape) > 2 or (len(shape) == 2 and isinstance(shape[1], int) and shape[1] != 1):
        problems.append(f"value output {name!r} has shape {shape}: one value per row is served")
    return problems


def _probability_problems(out: ClassificationOutput, node: Any) -> list[str]:
    name, kind = out.probability_tensor, str(node.type)
    is_zipmap = kind.startswith("seq(map(")
    if out.probability_format == "zipmap":
        key = "int64" if out.class_values is not None else "string"
        if not kind.startswith(f"seq(map({key},"):
            return [f"probability output {name!r} is {kind}, not a ZipMap with {key} keys"]
        return []
    if kind not in _PROBABILITY_TYPES:
        hint = " (it is a ZipMap: probability_format 'zipmap')" if is_zipmap else ""
        return [f"probability output {name!r} is {kind}; the manifest declares a [N, C] tensor{hint}"]
    shape = list(node.shape or [])  # [] when the export does not declare it
    width = shape[1] if len(shape) == 2 else None
    if (shape and len(shape) != 2) or (isinstance(width, int) and width != len(out.labels)):
        return [f"probability output {name!r} has shape {shape}; the manifest has {len(out.labels)} classes"]
    return []


__all__ = [
    "NP_DTYPES",
    "ORT_TYPES",
    "Columns",
    "InputLayout",
    "OutputReader",
    "Prediction",
    "check_signature",
]
