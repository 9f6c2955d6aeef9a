"""What the user's ONNX file says about itself: its tensors, its class labels, what it cannot be.

Read with the `onnx` package (class labels, categories, external data) and onnxruntime (the
signature, exactly as the server will see it at load). Nothing here changes a byte of the file.

Where class labels live in real exports (see docs/import.md): a ZipMap's keys
(`classlabels_int64s` / `classlabels_strings`, the order of the probability maps), the classifier
node (`LinearClassifier.classlabels_ints`, `SVMClassifier.classlabels_ints`,
`TreeEnsembleClassifier.classlabels_int64s`, or `classlabels_strings` on any of them), or, for a
skl2onnx MLPClassifier, a `classes` initializer read by ArrayFeatureExtractor. The order is the
model's own: it is the order of the probability columns, so it is never sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import onnx
import onnxruntime as ort
from onnx import numpy_helper

from onnxlambda.contract.manifest import Dtype
from onnxlambda_cli.importer.errors import ImportInputError

# ONNX input element types the server can feed, and the manifest's name for each.
INPUT_DTYPES: Final[dict[str, Dtype]] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}
_FLOAT_TYPES: Final = {"tensor(float)", "tensor(double)"}
_LABEL_TYPES: Final = {"tensor(int64)", "tensor(string)"}
# Classifier nodes (ai.onnx.ml) and the attributes holding their classes, in class order.
_CLASSIFIER_ATTRIBUTES: Final = {
    "ZipMap": ("classlabels_int64s", "classlabels_strings"),
    "LinearClassifier": ("classlabels_ints", "classlabels_strings"),
    "SVMClassifier": ("classlabels_ints", "classlabels_strings"),
    "TreeEnsembleClassifier": ("classlabels_int64s", "classlabels_strings"),
}
# Nodes that one-hot or look up string categories: their vocabularies hint at a missing token.
_VOCABULARY_ATTRIBUTES: Final = {"OneHotEncoder": "cats_strings", "LabelEncoder": "keys_strings"}
SUPPORTED_OUTPUTS: Final = (
    "a classifier's label (tensor(int64) or tensor(string), [N]) with or without its probabilities "
    "([N, C] float tensor or a ZipMap), probabilities alone ([N, C] float, classes named in the "
    "graph or by --class-names), or one regression value per row (float [N] or [N, 1])"
)

ClassLabels = list[int] | list[str]


@dataclass(frozen=True, slots=True)
class Tensor:
    """A graph input or output as onnxruntime reports it (what the server checks at load)."""

    name: str
    type: str  # "tensor(float)", "seq(map(int64,tensor(float)))", ...
    shape: tuple[int | str | None, ...]  # None or a dim_param name for a dynamic dimension

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def width(self) -> int | None:
        """The second dimension when fixed ([N, F] -> F), 1 for [N], else None."""
        if self.rank == 1:
            return 1
        return self.shape[1] if self.rank == 2 and isinstance(self.shape[1], int) else None

    def describe(self) -> str:
        dims = ["N" if i == 0 and not isinstance(d, int) else str(d) for i, d in enumerate(self.shape)]
        return (
            f"{self.name!r} {self.type} [{', '.join(dims)}]" if self.shape else f"{self.name!r} {self.type}"
        )


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How the server reads the outputs: which tensor holds the label, the probabilities, the value."""

    kind: Literal["classification", "regression"]
    label: Tensor | None = None
    probabilities: Tensor | None = None
    probability_format: Literal["tensor", "zipmap"] = "tensor"
    value: Tensor | None = None

    @property
    def integer_labels(self) -> bool:
        """Whether the model's classes are int64 values (else strings)."""
        if self.label is not None:
            return self.label.type == "tensor(int64)"
        return self.probabilities is not None and self.probabilities.type.startswith("seq(map(int64")


@dataclass(frozen=True, slots=True)
class Graph:
    """The loaded file: its bytes (untouched), a session on them, and what the graph declares."""

    model_bytes: bytes
    session: ort.InferenceSession
    inputs: list[Tensor]
    outputs: list[Tensor]
    classes: ClassLabels | None  # in the model's order; None when the graph names none
    classes_from: str  # where they were read, for the command's report
    vocabularies: dict[str, set[str]]  # string categories the graph knows, by the input they read

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)


def new_session(model_bytes: bytes) -> ort.InferenceSession:
    """A session like the server's: one thread, warnings silenced (LightGBM's label output is
    declared [1] and onnxruntime would print a warning on every run)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def read_graph(model_bytes: bytes, file_name: str) -> Graph:
    """Load the file as the server will, or refuse it saying why."""
    try:
        proto: onnx.ModelProto | None = onnx.load_model_from_string(model_bytes)
    except Exception:  # protobuf's DecodeError and friends: onnxruntime's reason is clearer
        proto = None
    if proto is not None:
        external = sorted({_location(t) for t in _tensors(proto.graph) if _is_external(t)})
        if external:
            raise ImportInputError(
                f"{file_name} keeps its weights in external data file(s) {', '.join(external)}; the "
                "served model must be one file: re-save it whole, e.g. onnx.save_model(onnx.load(path), "
                "out, save_as_external_data=False) (MLflow: mlflow.onnx.save_model(..., "
                "save_as_external_data=False)), and import that file"
            )
    try:
        session = new_session(model_bytes)
    except Exception as exc:  # onnxruntime raises its own untyped errors for graphs it refuses
        reason = " ".join(str(exc).split())
        raise ImportInputError(f"onnxruntime cannot load {file_name}: {reason}") from None
    if proto is None:
        raise ImportInputError(f"{file_name} is not an ONNX model the onnx package can read")
    inputs = [_tensor(t) for t in session.get_inputs()]
    outputs = [_tensor(t) for t in session.get_outputs()]
    classes, where = _class_labels(proto)
    return Graph(model_bytes, session, inputs, outputs, classes, where, _vocabularies(proto))


def plan_outputs(graph: Graph, have_class_names: bool) -> OutputPlan:
    """Which outputs hold what, from their types (names vary between converters: see docs)."""
    labels = [o for o in graph.outputs if o.type in _LABEL_TYPES and o.rank <= 2 and _one_per_row(o)]
    zipmaps = [o for o in graph.outputs if o.type.startswith("seq(map(")]
    matrices = [o for o in graph.outputs if o.type in _FLOAT_TYPES and o.rank == 2 and o.width != 1]
    values = [o for o in graph.outputs if o.type in _FLOAT_TYPES and _one_per_row(o)]
    if labels or zipmaps:
        if len(labels) > 1 or len(zipmaps) + len(matrices) > 1:
            raise ImportInputError(
                _unsupported(graph, "more than one output could be the label or the probabilities")
            )
        probabilities = zipmaps[0] if zipmaps else (matrices[0] if matrices else None)
        if (
            probabilities is not None
            and probabilities.type.startswith("seq(map(")
            and not (probabilities.type.endswith(",tensor(float)))"))
        ):
            raise ImportInputError(
                _unsupported(graph, f"the ZipMap {probabilities.describe()} is not of floats")
            )
        return OutputPlan(
            kind="classification",
            label=labels[0] if labels else None,
            probabilities=probabilities,
            probability_format="zipmap" if zipmaps else "tensor",
        )
    if len(matrices) == 1 and not values and (graph.classes is not None or have_class_names):
        return OutputPlan(kind="classification", probabilities=matrices[0])
    if len(values) == 1 and not matrices:
        return OutputPlan(kind="regression", value=values[0])
    if matrices and not values:
        why = (
            f"{matrices[0].describe()} is neither one value per row nor a classifier's probabilities "
            "(the graph names no classes; if it holds class probabilities, pass --class-names)"
        )
        raise ImportInputError(_unsupported(graph, why))
    raise ImportInputError(_unsupported(graph, "no output is a label, probabilities or one value per row"))


def _unsupported(graph: Graph, why: str) -> str:
    shown = "; ".join(o.describe() for o in graph.outputs)
    return f"unsupported model outputs ({shown}): {why}. Supported: {SUPPORTED_OUTPUTS}"


def _one_per_row(t: Tensor) -> bool:
    # [N], [N, 1], and LightGBM's label declared as [1] though it returns [N].
    return t.rank == 1 or (t.rank == 2 and t.width == 1)


def _tensor(arg: Any) -> Tensor:
    shape = arg.shape if isinstance(arg.shape, list) else []
    return Tensor(name=arg.name, type=str(arg.type), shape=tuple(shape))


# -- class labels ---------------------------------------------------------------------------------


def _class_labels(proto: onnx.ModelProto) -> tuple[ClassLabels | None, str]:
    found: dict[str, list[tuple[str, ClassLabels]]] = {"ZipMap": [], "classifier": [], "initializer": []}
    initializers = {t.name: t for t in proto.graph.initializer}
    for node in _nodes(proto.graph):
        names = _CLASSIFIER_ATTRIBUTES.get(node.op_type)
        if names is not None:
            attributes = {a.name: a for a in node.attribute}
            for attribute in names:
                a = attributes.get(attribute)
                if a is not None and (a.ints or a.strings):
                    labels: ClassLabels = (
                        [int(v) for v in a.ints] if a.ints else [s.decode("utf-8") for s in a.strings]
                    )
                    group = "ZipMap" if node.op_type == "ZipMap" else "classifier"
                    found[group].append((f"{node.op_type}.{attribute}", labels))
        elif node.op_type == "ArrayFeatureExtractor" and node.input and node.input[0] in initializers:
            # skl2onnx's MLPClassifier: the label is classes[argmax(probabilities)].
            values = numpy_helper.to_array(initializers[node.input[0]])
            if values.ndim == 1 and values.dtype.kind in "iuOSU":
                labels = (
                    [int(v) for v in values]
                    if values.dtype.kind in "iu"
                    else [v.decode() if isinstance(v, bytes) else str(v) for v in values]
                )
                found["initializer"].append((f"initializer {node.input[0]!r}", labels))
    for group in ("ZipMap", "classifier", "initializer"):
        distinct = {tuple(labels) for _, labels in found[group]}
        if len(distinct) == 1:
            where, labels = found[group][0]
            return labels, where
        if len(distinct) > 1 and group != "classifier":
            raise ImportInputError(
                f"the graph holds several class lists ({'; '.join(w for w, _ in found[group])}) and "
                "the class order cannot be told: export the classifier with a single set of classes"
            )
    return None, ""


def _vocabularies(proto: onnx.ModelProto) -> dict[str, set[str]]:
    """Category strings of one-hot/label encoders, keyed by the tensor each one reads."""
    out: dict[str, set[str]] = {}
    for node in _nodes(proto.graph):
        attribute = _VOCABULARY_ATTRIBUTES.get(node.op_type)
        if attribute is None or not node.input:
            continue
        for a in node.attribute:
            if a.name == attribute:
                out.setdefault(node.input[0], set()).update(s.decode("utf-8") for s in a.strings)
    return out


# -- walking the graph ----------------------------------------------------------------------------


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for a in node.attribute:
            for sub in [a.g] if a.HasField("g") else list(a.graphs):
                yield from _nodes(sub)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for sub in [a.g] if a.HasField("g") else list(a.graphs):
                yield from _tensors(sub)


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL


def _location(tensor: onnx.TensorProto) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "?")


__all__ = [
    "INPUT_DTYPES",
    "SUPPORTED_OUTPUTS",
    "ClassLabels",
    "Graph",
    "OutputPlan",
    "Tensor",
    "new_session",
    "plan_outputs",
    "read_graph",
]
