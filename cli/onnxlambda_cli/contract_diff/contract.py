"""What the contract diff compares, and how severe a change is.

`Contract` is the part of a manifest the diff reads (from a manifest file or a `GET /model` body),
checked strictly with the manifest's own types; a `Change` is one difference with its level
(breaking, compatible, model, metadata) and the version bump that level needs. `shown` and
`shortened` are how values appear in a change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from onnxlambda.contract.manifest import (
    ClassificationOutput,
    Feature,
    Metric,
    ModelInput,
    RegressionOutput,
    upgrade,
)
from onnxlambda.contract.strict import ManifestError, build

Level = Literal["breaking", "compatible", "model", "metadata"]
Bump = Literal["none", "patch", "minor", "major"]
LEVELS: Final[tuple[Level, ...]] = ("breaking", "compatible", "model", "metadata")
BUMP_OF: Final[dict[Level, Bump]] = {
    "breaking": "major",
    "compatible": "minor",
    "model": "patch",
    "metadata": "none",
}
BUMP_ORDER: Final[dict[str, int]] = {"none": 0, "patch": 1, "minor": 2, "major": 3}
# What the whole diff is called, by its most severe level.
CLASSIFICATION: Final[dict[Level | None, str]] = {
    "breaking": "breaking",
    "compatible": "compatible",
    "model": "weights-only",
    "metadata": "metadata-only",
    None: "identical",
}
SEMVER: Final = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: how severe, where, what, and why it is classified so."""

    level: Level
    where: str
    what: str
    old: str
    new: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {
            "level": self.level,
            "bump": BUMP_OF[self.level],
            "where": self.where,
            "what": self.what,
            "old": self.old,
            "new": self.new,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Contract:
    """The parts of a manifest the diff reads, from a manifest file or a `GET /model` body
    (which leaves out the baselines: they are then not compared)."""

    name: str
    version: str
    sha256: str
    description: str
    model_file: str
    extra_fields: str
    features: list[Feature]
    inputs: list[ModelInput]
    output: ClassificationOutput | RegressionOutput
    metrics: list[Metric]
    primary_metric: str | None
    training: dict[str, Any] | None
    lineage: dict[str, Any] | None
    golden: dict[str, Any] | None
    baselines: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contract:
        """Read and check the contract parts (strictly, with the manifest's own types)."""
        body = upgrade(dict(data))
        try:
            features = [build(Feature, f) for f in _list(body, "features")]
            inputs = [build(ModelInput, i) for i in _list(body, "inputs")]
            raw_out = body.get("output")
            if not isinstance(raw_out, dict):
                raise ManifestError("field required", ("output",))
            kind = raw_out.get("kind")
            output: ClassificationOutput | RegressionOutput
            if kind == "classification":
                output = build(ClassificationOutput, raw_out)
            elif kind == "regression":
                output = build(RegressionOutput, raw_out)
            else:
                raise ManifestError(
                    f"kind must be 'classification' or 'regression', got {kind!r}", ("output",)
                )
            metrics = [build(Metric, m) for m in body.get("metrics") or []]
        except ManifestError:
            raise
        except (TypeError, ValueError) as exc:
            raise ManifestError(str(exc)) from None
        for key in ("name", "version", "sha256"):
            if not isinstance(body.get(key), str):
                raise ManifestError("field required (a string)", (key,))
        if not SEMVER.fullmatch(body["version"]):
            raise ManifestError(f"{body['version']!r} is not a MAJOR.MINOR.PATCH version", ("version",))
        return cls(
            name=body["name"],
            version=body["version"],
            sha256=body["sha256"],
            description=str(body.get("description", "")),
            model_file=str(body.get("model_file", "model.onnx")),
            extra_fields=str(body.get("extra_fields", "reject")),
            features=features,
            inputs=inputs,
            output=output,
            metrics=metrics,
            primary_metric=body.get("primary_metric"),
            training=_dict_or_none(body.get("training")),
            lineage=_dict_or_none(body.get("lineage")),
            golden=_dict_or_none(body.get("golden")),
            baselines=_dict_or_none(body.get("baselines")),
        )

    def ref(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def _list(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ManifestError("must be a list of objects", (key,))
    return value


def _dict_or_none(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def shown(value: object) -> str:
    """A value as a change shows it: "-" for none, floats short, lists bracketed."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def shortened(value: object, limit: int = 40) -> str:
    """`shown`, cut to `limit` characters."""
    text = shown(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "BUMP_OF",
    "BUMP_ORDER",
    "CLASSIFICATION",
    "LEVELS",
    "SEMVER",
    "Bump",
    "Change",
    "Contract",
    "Level",
    "shortened",
    "shown",
]
