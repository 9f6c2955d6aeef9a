"""The model manifest: the single source of truth for a model's contract.

Validation, the OpenAPI document, drift baselines and the golden-set check all read this file;
nothing about a model is hand-copied anywhere else. `models/<name>/train.py` writes it beside
`model.onnx`.

The contract types are frozen stdlib dataclasses checked by a small loader (below), not pydantic
models: importing pydantic was ~90 ms of the API function's cold start and this module was the
only thing on its import path that needed it (issue #7, README "Performance"). Every instance is
checked when it is built, by the loader or by code (`models/_common.py`): field types (ints
widened to float where the field is a float, as pydantic's lax mode did), `kind`-discriminated
unions, patterns, unknown or missing fields, and the cross-field rules.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Final, Literal, Union, get_args, get_origin, get_type_hints

MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.json"
OPENAPI_FILE = "openapi.json"  # built by `onnxlambda openapi`, served verbatim at GET /openapi.json
SCHEMA_VERSION: Final = 1


class ManifestError(ValueError):
    """A manifest or golden set that breaks the contract; `loc` is the path to the bad value."""

    def __init__(self, msg: str, loc: tuple[str | int, ...] = ()) -> None:
        self.msg, self.loc = msg, loc
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)

    def at(self, *prefix: str | int) -> ManifestError:
        return ManifestError(self.msg, (*prefix, *self.loc))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Resolved once per class (the annotations are strings: `from __future__ import annotations`).
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _convert(tp: Any, value: object) -> object:
    """`value` checked against the annotation `tp` (JSON shapes, or already-built instances)."""
    origin = get_origin(tp)
    if tp is object:
        return value
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in get_args(tp)):
            return value
        raise ManifestError(f"must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
    if origin is Union or origin is types.UnionType:
        return _convert_union(get_args(tp), value)
    if origin is list:
        return _convert_list(get_args(tp)[0], value)
    if origin is dict:
        return _convert_dict(get_args(tp)[1], value)
    return _convert_scalar(tp, value)


def _convert_scalar(tp: Any, value: object) -> object:
    if isinstance(tp, type) and is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ManifestError(f"must be an object, got {type(value).__name__}")
        return _build(tp, value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    raise ManifestError(f"must be {getattr(tp, '__name__', tp)}, got {type(value).__name__}")


def _convert_list(item: Any, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise ManifestError(f"must be a list, got {type(value).__name__}")
    out: list[object] = []
    for i, v in enumerate(value):
        try:
            out.append(_convert(item, v))
        except ManifestError as exc:
            raise exc.at(i) from None
    return out


def _convert_dict(item: Any, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"must be an object, got {type(value).__name__}")
    out: dict[str, object] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ManifestError(f"keys must be strings, got {k!r}")
        try:
            out[k] = _convert(item, v)
        except ManifestError as exc:
            raise exc.at(k) from None
    return out


def _convert_union(args: tuple[Any, ...], value: object) -> object:
    if value is None:
        if type(None) in args:
            return None
        raise ManifestError("must not be null")
    classes = [a for a in args if isinstance(a, type) and is_dataclass(a)]
    if classes:  # discriminated on `kind`, like pydantic's Field(discriminator="kind")
        if isinstance(value, tuple(classes)):
            return value
        kinds = {f.default: c for c in classes for f in fields(c) if f.name == "kind"}
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind not in kinds:
            raise ManifestError(f"kind must be one of {', '.join(map(repr, kinds))}, got {kind!r}")
        return _convert(kinds[kind], value)
    # Scalars: an exact type match wins (pydantic's smart mode), then the first that converts.
    for a in args:
        if type(value) is a:
            return value
    errors = []
    for a in args:
        if a is not type(None):
            try:
                return _convert(a, value)
            except ManifestError as exc:
                errors.append(exc.msg)
    raise ManifestError(" or ".join(errors))


def _build[T](cls: type[T], data: dict[str, object]) -> T:
    declared = fields(cls)  # type: ignore[arg-type]
    unknown = sorted(set(data) - {f.name for f in declared})
    if unknown:
        raise ManifestError("unknown field").at(unknown[0])
    for f in declared:
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            raise ManifestError("field required").at(f.name)
    return cls(**data)


class _Frozen:
    """Checks (and, where a float field got an int, widens) every field when an instance is built."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            name = f.name
            try:
                object.__setattr__(self, name, _convert(hints[name], getattr(self, name)))
            except ManifestError as exc:
                raise exc.at(name) from None
        patterns: dict[str, str] = getattr(self, "_PATTERNS", {})
        for name, pattern in patterns.items():
            value = getattr(self, name)
            if not re.fullmatch(pattern, value):
                raise ManifestError(f"{value!r} does not match {pattern!r}", (name,))
        try:
            self._check()
        except ManifestError:
            raise
        except ValueError as exc:
            raise ManifestError(str(exc)) from None

    def _check(self) -> None:
        """Cross-field rules; raise ValueError."""


@dataclass(frozen=True, kw_only=True)
class NumericBaseline(_Frozen):
    """Distribution of a numeric column in the reference (training) data.

    `cut_points` are interior bin edges; `counts` has len(cut_points) + 1 entries, the first bin
    open to -inf and the last to +inf, so every finite value lands in some bin. A value x falls in
    bin `numpy.searchsorted(cut_points, x, side="right")`, i.e. bin i is [cut[i-1], cut[i]).
    `count` includes missing values, so sum(counts) == count - missing. Monitors must bin the
    same way.
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
class CategoricalBaseline(_Frozen):
    """Category counts in the reference data (`missing` counts nulls)."""

    kind: Literal["categorical"] = "categorical"
    count: int
    missing: int
    counts: dict[str, int]


Baseline = NumericBaseline | CategoricalBaseline


@dataclass(frozen=True, kw_only=True)
class Feature(_Frozen):
    """One model input. Each feature is its own ONNX input tensor of shape [N, 1]."""

    _PATTERNS = {"name": r"^[A-Za-z_][A-Za-z0-9_]*$"}

    name: str
    dtype: Literal["float32", "float64", "int64", "string"]
    description: str = ""
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None
    # Where the model input tensor is named differently from the public feature name.
    onnx_name: str | None = None

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "string"

    @property
    def tensor_name(self) -> str:
        return self.onnx_name or self.name

    def _check(self) -> None:
        if self.is_categorical:
            if not self.categories:
                raise ValueError(f"string feature {self.name!r} needs a non-empty categories list")
            if self.minimum is not None or self.maximum is not None:
                raise ValueError(f"string feature {self.name!r} cannot have a numeric range")
        else:
            if self.categories is not None:
                raise ValueError(f"numeric feature {self.name!r} cannot have categories")
            if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
                raise ValueError(f"feature {self.name!r}: minimum > maximum")


@dataclass(frozen=True, kw_only=True)
class ClassificationOutput(_Frozen):
    kind: Literal["classification"] = "classification"
    label_tensor: str
    probability_tensor: str | None = None
    labels: list[str]


@dataclass(frozen=True, kw_only=True)
class RegressionOutput(_Frozen):
    kind: Literal["regression"] = "regression"
    value_tensor: str
    name: str = "prediction"
    unit: str = ""


Output = ClassificationOutput | RegressionOutput


@dataclass(frozen=True, kw_only=True)
class Metric(_Frozen):
    name: str
    value: float
    higher_is_better: bool = True


@dataclass(frozen=True, kw_only=True)
class Training(_Frozen):
    dataset: str
    source: str
    fingerprint_sha256: str
    rows: int
    train_rows: int
    test_rows: int
    seed: int
    library_versions: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Lineage(_Frozen):
    created_at: str
    train_script: str
    train_script_sha256: str
    code_revision: str


@dataclass(frozen=True, kw_only=True)
class Baselines(_Frozen):
    features: dict[str, NumericBaseline | CategoricalBaseline]
    output: NumericBaseline | CategoricalBaseline


@dataclass(frozen=True, kw_only=True)
class GoldenSpec(_Frozen):
    file: str = GOLDEN_FILE
    probability_tolerance: float = 1e-4
    value_tolerance: float = 1e-3


@dataclass(frozen=True, kw_only=True)
class Manifest(_Frozen):
    _PATTERNS = {
        "name": r"^[a-z0-9][a-z0-9_-]*$",
        "version": r"^\d+\.\d+\.\d+$",
        "sha256": r"^[0-9a-f]{64}$",
    }

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    version: str
    description: str = ""
    model_file: str = "model.onnx"
    sha256: str
    # What to do with a request field that is not a feature: reject it (422) or ignore it.
    extra_fields: Literal["reject", "ignore"] = "reject"
    features: list[Feature]
    output: ClassificationOutput | RegressionOutput
    metrics: list[Metric]
    primary_metric: str
    training: Training
    lineage: Lineage
    baselines: Baselines
    golden: GoldenSpec = field(default_factory=GoldenSpec)

    def _check(self) -> None:
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError("features must be non-empty and uniquely named")
        if self.primary_metric not in {m.name for m in self.metrics}:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not among metrics")
        missing = set(names) - set(self.baselines.features)
        if missing:
            raise ValueError(f"baselines missing for features {sorted(missing)}")

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
class GoldenCase(_Frozen):
    instance: dict[str, float | int | str | None]
    # classification: {"label": str, "probabilities": {label: p}}; regression: {<output.name>: v},
    # the same shape as a /predict response row without its inference_id.
    expected: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class GoldenSet(_Frozen):
    model_name: str
    model_version: str
    model_sha256: str
    cases: list[GoldenCase]


def as_json(obj: _Frozen) -> dict[str, object]:
    """A contract object as JSON-ready dicts and lists, fields in declaration order."""
    body: dict[str, object] = asdict(obj)  # type: ignore[call-overload]
    return body


def _load[T](cls: type[T], path: Path) -> T:
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} must hold a JSON object")
    return _build(cls, data)


def load_manifest(model_dir: Path) -> Manifest:
    return _load(Manifest, model_dir / MANIFEST_FILE)


def load_golden(model_dir: Path, manifest: Manifest) -> GoldenSet:
    return _load(GoldenSet, model_dir / manifest.golden.file)


def dump_json(obj: object) -> str:
    """Canonical JSON for committed artifacts: sorted keys, stable floats, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
