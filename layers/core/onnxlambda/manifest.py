"""The model manifest: the single source of truth for a model's contract.

Validation, the OpenAPI document, drift baselines and the golden-set check all read this file;
nothing about a model is hand-copied anywhere else. `models/<name>/train.py` writes it beside
`model.onnx`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.json"
SCHEMA_VERSION: Final = 1


class _Frozen(BaseModel):
    # defer_build: a model's validator is built on its first use, not at import. The API function
    # validates only a Manifest (its nested models are built inline with it, once) and never the
    # golden-set models: ~2 ms less init than building every class at import (make bench, README).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


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

    @model_validator(mode="after")
    def _bins_match(self) -> NumericBaseline:
        if len(self.counts) != len(self.cut_points) + 1:
            raise ValueError("counts must have len(cut_points) + 1 entries")
        if any(b <= a for a, b in zip(self.cut_points, self.cut_points[1:], strict=False)):
            raise ValueError("cut_points must be strictly increasing")
        return self


class CategoricalBaseline(_Frozen):
    """Category counts in the reference data (`missing` counts nulls)."""

    kind: Literal["categorical"] = "categorical"
    count: int
    missing: int
    counts: dict[str, int]


Baseline = Annotated[NumericBaseline | CategoricalBaseline, Field(discriminator="kind")]


class Feature(_Frozen):
    """One model input. Each feature is its own ONNX input tensor of shape [N, 1]."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
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

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
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
        return self


class ClassificationOutput(_Frozen):
    kind: Literal["classification"] = "classification"
    label_tensor: str
    probability_tensor: str | None = None
    labels: list[str]


class RegressionOutput(_Frozen):
    kind: Literal["regression"] = "regression"
    value_tensor: str
    name: str = "prediction"
    unit: str = ""


Output = Annotated[ClassificationOutput | RegressionOutput, Field(discriminator="kind")]


class Metric(_Frozen):
    name: str
    value: float
    higher_is_better: bool = True


class Training(_Frozen):
    dataset: str
    source: str
    fingerprint_sha256: str
    rows: int
    train_rows: int
    test_rows: int
    seed: int
    library_versions: dict[str, str]


class Lineage(_Frozen):
    created_at: str
    train_script: str
    train_script_sha256: str
    code_revision: str


class Baselines(_Frozen):
    features: dict[str, Baseline]
    output: Baseline


class GoldenSpec(_Frozen):
    file: str = GOLDEN_FILE
    probability_tolerance: float = 1e-4
    value_tolerance: float = 1e-3


class Manifest(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str = ""
    model_file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # What to do with a request field that is not a feature: reject it (422) or ignore it.
    extra_fields: Literal["reject", "ignore"] = "reject"
    features: list[Feature]
    output: Output
    metrics: list[Metric]
    primary_metric: str
    training: Training
    lineage: Lineage
    baselines: Baselines
    golden: GoldenSpec = GoldenSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError("features must be non-empty and uniquely named")
        if self.primary_metric not in {m.name for m in self.metrics}:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not among metrics")
        missing = set(names) - set(self.baselines.features)
        if missing:
            raise ValueError(f"baselines missing for features {sorted(missing)}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def public(self) -> dict[str, object]:
        """The part of the manifest served at GET /model (everything but the raw baselines)."""
        return self.model_dump(mode="json", exclude={"baselines"})


class GoldenCase(_Frozen):
    instance: dict[str, float | int | str | None]
    # classification: {"label": str, "probabilities": {label: p}}; regression: {<output.name>: v},
    # the same shape as a /predict response row without its inference_id.
    expected: dict[str, object]


class GoldenSet(_Frozen):
    model_name: str
    model_version: str
    model_sha256: str
    cases: list[GoldenCase]


def load_manifest(model_dir: Path) -> Manifest:
    return Manifest.model_validate_json((model_dir / MANIFEST_FILE).read_bytes())


def load_golden(model_dir: Path, manifest: Manifest) -> GoldenSet:
    return GoldenSet.model_validate_json((model_dir / manifest.golden.file).read_bytes())


def dump_json(obj: object) -> str:
    """Canonical JSON for committed artifacts: sorted keys, stable floats, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
