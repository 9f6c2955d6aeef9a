"""The model manifest: the single source of truth for a model's contract.

Validation, the input layout fed to onnxruntime, the way outputs are read, the OpenAPI document,
drift baselines and the golden-set check all read this file; nothing about a model is
hand-copied anywhere else. `onnxlambda import` writes it beside the user's `model.onnx`.

Three layers of names, kept apart on purpose:
- features: what callers send, under the data's own column names (any printable string, e.g.
  "od280/od315_of_diluted_wines"); validation is per feature;
- inputs: the ONNX graph's input tensors and which features each carries, in column order (one
  [N, 1] tensor per feature, one packed [N, F] tensor, or a mix, as exports make them);
- output: which graph outputs hold the label, the class probabilities (a [N, C] tensor or a
  ZipMap sequence of maps) or the regression value, and the class names in the model's own order.

Schema history: version 1 had one [N, 1] input per feature (`Feature.onnx_name`); `load_manifest`
still reads it and upgrades it in memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from onnxlambda.contract.strict import Frozen, ManifestError, build

MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.json"
OPENAPI_FILE = "openapi.json"  # built by `onnxlambda openapi`, served verbatim at GET /openapi.json
SCHEMA_VERSION: Final = 2

Dtype = Literal["float32", "float64", "int64", "string"]
# A public name: printable, no leading or trailing whitespace (CSV headers are read stripped).
NAME_PATTERN: Final = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,254}[^\s\x00-\x1f\x7f])?$"


@dataclass(frozen=True, kw_only=True)
class NumericBaseline(Frozen):
    """Distribution of a numeric column in the reference (training) data.

    `cut_points` are interior bin edges; `counts` has len(cut_points) + 1 entries, the first bin
    open to -inf and the last to +inf, so every finite value lands in some bin. A value x falls in
    bin `numpy.searchsorted(cut_points, x, side="right")`, i.e. bin i is [cut[i-1], cut[i]).
    `count` includes missing values, so sum(counts) == count - missing. Monitors must bin the
    same way (onnxlambda.monitoring.drift).
    """

    kind: Literal["numeric"] = "numeric"
    count: int
    missing: int
    mean: float
    std_dev: float
    min: float
    max: float
    cut_points: list[float]
    counts: list[int]

    def _check(self) -> None:
        if len(self.counts) != len(self.cut_points) + 1:
            raise ValueError("counts must have len(cut_points) + 1 entries")
        if any(b <= a for a, b in zip(self.cut_points, self.cut_points[1:], strict=False)):
            raise ValueError("cut_points must be strictly increasing")


@dataclass(frozen=True, kw_only=True)
class CategoricalBaseline(Frozen):
    """Category counts in the reference data (`missing` counts nulls)."""

    kind: Literal["categorical"] = "categorical"
    count: int
    missing: int
    counts: dict[str, int]


Baseline = NumericBaseline | CategoricalBaseline


@dataclass(frozen=True, kw_only=True)
class Feature(Frozen):
    """One value a caller sends, validated on its own, then placed in a model input (`inputs`).

    `dtype` is the element type of the tensor the feature feeds: float32/float64 accept any JSON
    number, int64 only integral ones, string only the listed categories.
    """

    _PATTERNS = {"name": NAME_PATTERN}

    name: str
    dtype: Dtype
    description: str = ""
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None
    # What a null of a string feature is fed to the model as: the token its pipeline was trained
    # to impute (skl2onnx's examples fill "missing"; SimpleImputer(missing_values="") reads "").
    # A null number is always NaN.
    missing_string: str = ""

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "string"

    def _check(self) -> None:
        if self.is_categorical:
            if not self.categories:
                raise ValueError(f"string feature {self.name!r} needs a non-empty categories list")
            if self.minimum is not None or self.maximum is not None:
                raise ValueError(f"string feature {self.name!r} cannot have a numeric range")
        else:
            if self.categories is not None:
                raise ValueError(f"numeric feature {self.name!r} cannot have categories")
            if self.missing_string:
                raise ValueError(f"numeric feature {self.name!r} cannot have a missing_string")
            if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
                raise ValueError(f"feature {self.name!r}: minimum > maximum")


@dataclass(frozen=True, kw_only=True)
class ModelInput(Frozen):
    """One ONNX graph input and the features it carries, in column order.

    rank 2: shape [N, len(features)] (one feature: [N, 1]; many: a packed matrix);
    rank 1: shape [N], exactly one feature. Missing values reach the model as NaN (numbers) or
    "" (strings), the way scikit-learn's imputers and the exports expect them.
    """

    name: str
    dtype: Dtype
    features: list[str]
    rank: Literal[1, 2] = 2

    def _check(self) -> None:
        if not self.features:
            raise ValueError(f"input {self.name!r} carries no feature")
        if self.rank == 1 and len(self.features) != 1:
            raise ValueError(f"input {self.name!r} has rank 1, so it carries exactly one feature")


@dataclass(frozen=True, kw_only=True)
class ClassificationOutput(Frozen):
    """Where a classifier's answer is, and what its classes are called.

    `labels` are the public class names in the model's own class order (the order of the
    probability columns, taken from the graph, never sorted). When the model emits integer
    labels, `class_values` are those integers in the same order (labels[i] names class_values[i]);
    for string labels it is None and the model's labels are the names. Probabilities come as a
    [N, C] tensor or as a ZipMap (a sequence of {class value: probability} maps). Without a
    label tensor the label is the most probable class.
    """

    kind: Literal["classification"] = "classification"
    label_tensor: str | None
    probability_tensor: str | None = None
    probability_format: Literal["tensor", "zipmap"] = "tensor"
    labels: list[str]
    class_values: list[int] | None = None

    def _check(self) -> None:
        if self.label_tensor is None and self.probability_tensor is None:
            raise ValueError("a classifier needs a label tensor, a probability tensor, or both")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be non-empty and unique")
        if self.class_values is not None and (
            len(self.class_values) != len(self.labels) or len(set(self.class_values)) != len(self.labels)
        ):
            raise ValueError("class_values must be unique and as many as labels")


@dataclass(frozen=True, kw_only=True)
class RegressionOutput(Frozen):
    """One predicted number per row, read from a [N] or [N, 1] tensor."""

    kind: Literal["regression"] = "regression"
    value_tensor: str
    name: str = "prediction"
    unit: str = ""


Output = ClassificationOutput | RegressionOutput


@dataclass(frozen=True, kw_only=True)
class Metric(Frozen):
    name: str
    value: float
    higher_is_better: bool = True


@dataclass(frozen=True, kw_only=True)
class Training(Frozen):
    """The reference data the contract and baselines were derived from (and the test split)."""

    dataset: str
    source: str
    fingerprint_sha256: str
    rows: int
    train_rows: int
    test_rows: int
    seed: int | None = None
    library_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Lineage(Frozen):
    """How this model directory came to be: imported from the user's file (`source_file`, its
    sha256 is the manifest's sha256: the bytes are served unchanged), optionally with the
    script that trained it."""

    kind: Literal["imported", "trained"] = "imported"
    created_at: str
    source_file: str | None = None
    train_script: str | None = None
    train_script_sha256: str | None = None
    code_revision: str | None = None
    tool: str = ""


@dataclass(frozen=True, kw_only=True)
class Baselines(Frozen):
    features: dict[str, NumericBaseline | CategoricalBaseline]
    output: NumericBaseline | CategoricalBaseline


@dataclass(frozen=True, kw_only=True)
class GoldenSpec(Frozen):
    file: str = GOLDEN_FILE
    probability_tolerance: float = 1e-4
    value_tolerance: float = 1e-3


@dataclass(frozen=True, kw_only=True)
class Manifest(Frozen):
    _PATTERNS = {
        "name": r"^[a-z0-9][a-z0-9_-]*$",
        "version": r"^\d+\.\d+\.\d+$",
        "sha256": r"^[0-9a-f]{64}$",
    }

    schema_version: Literal[2] = SCHEMA_VERSION
    name: str
    version: str
    description: str = ""
    model_file: str = "model.onnx"
    sha256: str
    # What to do with a request field that is not a feature: reject it (422) or ignore it.
    extra_fields: Literal["reject", "ignore"] = "reject"
    features: list[Feature]
    inputs: list[ModelInput]
    output: ClassificationOutput | RegressionOutput
    metrics: list[Metric] = field(default_factory=list)
    primary_metric: str | None = None
    training: Training
    lineage: Lineage
    baselines: Baselines
    golden: GoldenSpec = field(default_factory=GoldenSpec)

    def _check(self) -> None:
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError("features must be non-empty and uniquely named")
        if self.primary_metric is not None and self.primary_metric not in {m.name for m in self.metrics}:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not among metrics")
        missing = set(names) - set(self.baselines.features)
        if missing:
            raise ValueError(f"baselines missing for features {sorted(missing)}")
        self._check_inputs()

    def _check_inputs(self) -> None:
        dtypes = {f.name: f.dtype for f in self.features}
        tensors = [i.name for i in self.inputs]
        if len(set(tensors)) != len(tensors):
            raise ValueError(f"inputs name an ONNX tensor more than once: {tensors}")
        placed: dict[str, str] = {}
        for tensor in self.inputs:
            for name in tensor.features:
                if name not in dtypes:
                    raise ValueError(f"input {tensor.name!r} carries {name!r}, which is not a feature")
                if name in placed:
                    raise ValueError(f"feature {name!r} is in inputs {placed[name]!r} and {tensor.name!r}")
                if dtypes[name] != tensor.dtype:
                    raise ValueError(
                        f"feature {name!r} is {dtypes[name]} but input {tensor.name!r} is {tensor.dtype}"
                    )
                placed[name] = tensor.name
        unplaced = [n for n in dtypes if n not in placed]
        if unplaced:
            raise ValueError(f"features in no model input: {unplaced}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def public(self) -> dict[str, object]:
        """The part of the manifest served at GET /model (everything but the raw baselines)."""
        body = as_json(self)
        del body["baselines"]
        return body


@dataclass(frozen=True, kw_only=True)
class GoldenCase(Frozen):
    instance: dict[str, float | int | str | None]
    # classification: {"label": str, "probabilities": {label: p}}; regression: {<output.name>: v},
    # the same shape as a /predict response row without its inference_id.
    expected: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class GoldenSet(Frozen):
    model_name: str
    model_version: str
    model_sha256: str
    cases: list[GoldenCase]

    def _check(self) -> None:
        if not self.cases:
            raise ValueError("a golden set needs at least one case")


def as_json(obj: Frozen) -> dict[str, object]:
    """A contract object as JSON-ready dicts and lists, fields in declaration order."""
    body: dict[str, object] = asdict(obj)  # type: ignore[call-overload]
    return body


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest (one [N, 1] input per feature, named by `onnx_name` or the feature)
    as schema 2, so models built before the input layout existed still load."""
    # Schema 1 always lacked `inputs`; a manifest that has them is read as it is.
    if data.get("schema_version", 1 if "inputs" not in data else SCHEMA_VERSION) != 1:
        return data
    data = dict(data, schema_version=SCHEMA_VERSION)
    features = [dict(f) for f in data.get("features", [])]
    data["inputs"] = [
        {"name": f.pop("onnx_name", None) or f["name"], "dtype": f["dtype"], "features": [f["name"]]}
        for f in features
    ]
    data["features"] = features
    lineage = dict(data.get("lineage", {}))
    lineage.setdefault("kind", "trained")
    data["lineage"] = lineage
    return data


def _load[T](cls: type[T], path: Path) -> T:
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} must hold a JSON object")
    if cls is Manifest:
        data = upgrade(data)
    return build(cls, data)


def load_manifest(model_dir: Path) -> Manifest:
    return _load(Manifest, model_dir / MANIFEST_FILE)


def load_golden(model_dir: Path, manifest: Manifest) -> GoldenSet:
    return _load(GoldenSet, model_dir / manifest.golden.file)


def dump_json(obj: object) -> str:
    """Canonical JSON for committed artifacts: sorted keys, stable floats, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


__all__ = [
    "GOLDEN_FILE",
    "MANIFEST_FILE",
    "OPENAPI_FILE",
    "SCHEMA_VERSION",
    "Baseline",
    "Baselines",
    "CategoricalBaseline",
    "ClassificationOutput",
    "Feature",
    "GoldenCase",
    "GoldenSet",
    "GoldenSpec",
    "Lineage",
    "Manifest",
    "ManifestError",
    "Metric",
    "ModelInput",
    "NumericBaseline",
    "Output",
    "RegressionOutput",
    "Training",
    "as_json",
    "dump_json",
    "load_manifest",
    "upgrade",
]
