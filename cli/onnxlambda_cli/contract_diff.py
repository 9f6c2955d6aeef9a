"""What changed between two model manifests, from the caller's side, and the version bump it needs.

Every difference between two manifests (files, model directories, or a deployed version's
`GET /model`) is classified by what it does to the people calling the service:

    breaking     a request that worked may now be refused, or an answer reads differently:
                 feature removed, new feature (every key is required, see below), dtype changed,
                 range narrowed, category removed, nullable -> required, extra fields refused,
                 a V2 input tensor added/removed/re-laid-out, output kind, label set or order,
                 output names or unit changed, model renamed                     -> major bump
    compatible   every request that worked still works, and more may: range widened, category
                 added, required -> nullable, extra fields ignored, a new probability output;
                 or the evidence about the model changed: metrics, baselines   -> minor bump
    model        the contract is the same but the answers may differ: model.onnx bytes
                 (weights-only), the token a null string is fed as, the output's internal
                 encoding (ZipMap vs tensor, class values)                        -> patch bump
    metadata     descriptions, provenance (lineage, training data fingerprint and sizes,
                 library versions), golden tolerances, orders nobody sees: the same bytes
                 answer the same contract the same way, so no bump is needed      -> none

A version names what callers get (every response carries it with the model's sha256): the
contract and the answers. Provenance alone does not change either (re-importing the same export
and data with another tool writes another lineage and fingerprint); if the reference data really
changed, the baselines and metrics say so, and they are compatible changes.

One rule differs from the usual "an optional field is compatible": this service requires every
feature key in every row (`/predict` answers 422 `missing_feature` for an absent key, even a
nullable one - callers send `null` for unknown - and V2 needs every input tensor), so a new
feature is breaking even when it is nullable. The tests check each classification against the
validator itself: a "compatible" change accepts every request the old contract accepted.

Pure functions over JSON (no onnxruntime, no boto3): the CLI (`onnxlambda diff`) and the release
path use them, and the pre-traffic hook could.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
_SEMVER: Final = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


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
        if not _SEMVER.fullmatch(body["version"]):
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


# -- the diff -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContractDiff:
    old: Contract
    new: Contract
    changes: list[Change]
    notes: list[str] = field(default_factory=list)

    @property
    def level(self) -> Level | None:
        """The most severe level among the changes (None: identical)."""
        present = {c.level for c in self.changes}
        return next((lvl for lvl in LEVELS if lvl in present), None)

    @property
    def classification(self) -> str:
        return CLASSIFICATION[self.level]

    @property
    def required_bump(self) -> Bump:
        return "none" if self.level is None else BUMP_OF[self.level]

    @property
    def actual_bump(self) -> str:
        return version_bump(self.old.version, self.new.version)

    @property
    def bump_ok(self) -> bool:
        actual = self.actual_bump
        if actual == "downgrade":
            return False
        return BUMP_ORDER[actual] >= BUMP_ORDER[self.required_bump]

    def verdict(self) -> str:
        """One line: what changed, what it needs, whether the version says so."""
        old, new = self.old.version, self.new.version
        need = self.required_bump
        head = f"{self.new.name} {old} -> {new}: {self.classification}"
        if self.level is None:
            return f"{head} (no change){'' if old == new else f', {self.actual_bump} bump: ok'}"
        if need == "none":
            return f"{head}; no bump needed: ok" if self.bump_ok else f"{head}; {new} is a downgrade: REFUSED"
        wanted = f"needs a {need} bump (at least {next_version(old, need)})"
        actual = self.actual_bump
        given = "no bump" if actual == "none" else f"a {actual}" + ("" if actual == "downgrade" else " bump")
        return f"{head}; {wanted}, {new} is {given}: {'ok' if self.bump_ok else 'REFUSED'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.ref(),
            "new": self.new.ref(),
            "classification": self.classification,
            "required_bump": self.required_bump,
            "actual_bump": self.actual_bump,
            "bump_ok": self.bump_ok,
            "verdict": self.verdict(),
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
        }


def parse_version(version: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(version)
    if not match:
        raise ValueError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def version_bump(old: str, new: str) -> str:
    """'major' | 'minor' | 'patch' | 'none' (equal) | 'downgrade' (new is older)."""
    a, b = parse_version(old), parse_version(new)
    if b == a:
        return "none"
    if b < a:
        return "downgrade"
    if b[0] > a[0]:
        return "major"
    if b[1] > a[1]:
        return "minor"
    return "patch"


def next_version(old: str, bump: Bump) -> str:
    major, minor, patch = parse_version(old)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    return old


def diff(old: Contract, new: Contract) -> ContractDiff:
    """Every difference between two contracts, classified (see the module docstring)."""
    changes: list[Change] = []
    notes: list[str] = []
    changes += _model_changes(old, new)
    changes += _feature_changes(old, new)
    changes += _input_changes(old, new)
    changes += _output_changes(old.output, new.output)
    changes += _metric_changes(old, new)
    if old.baselines is None or new.baselines is None:
        notes.append("baselines not compared: a GET /model body does not carry them")
    elif old.baselines != new.baselines:
        changes += _baseline_changes(old.baselines, new.baselines)
    changes += _evidence_changes(old, new)
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    changes.sort(key=lambda c: order[c.level])  # stable: within a level, the order found
    return ContractDiff(old, new, changes, notes)


def _s(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_s(v) for v in value) + "]"
    return str(value)


def _model_changes(old: Contract, new: Contract) -> list[Change]:
    out: list[Change] = []
    if old.name != new.name:
        out.append(
            Change(
                "breaking",
                "model",
                "renamed",
                old.name,
                new.name,
                "V2 URLs name the model; monitoring follows it",
            )
        )
    if old.extra_fields != new.extra_fields:
        tighter = new.extra_fields == "reject"
        out.append(
            Change(
                "breaking" if tighter else "compatible",
                "request",
                "extra fields",
                old.extra_fields,
                new.extra_fields,
                "a field that is not a feature is now refused (422 unknown_feature)"
                if tighter
                else "a field that is not a feature is now ignored instead of refused",
            )
        )
    if old.sha256 != new.sha256:
        out.append(
            Change(
                "model", "model.onnx", "sha256", old.sha256[:12], new.sha256[:12], "new model bytes (weights)"
            )
        )
    if old.model_file != new.model_file:
        out.append(
            Change("metadata", "model", "file name", old.model_file, new.model_file, "not caller-visible")
        )
    if old.description != new.description:
        out.append(Change("metadata", "model", "description", "...", "...", "documentation"))
    return out


def _feature_changes(old: Contract, new: Contract) -> list[Change]:
    before = {f.name: f for f in old.features}
    after = {f.name: f for f in new.features}
    out: list[Change] = []
    for name, feature in before.items():
        if name not in after:
            why = (
                "callers still send it: 422 unknown_feature"
                if new.extra_fields == "reject"
                else "callers still send it; the model no longer reads it"
            )
            out.append(Change("breaking", f"feature {name!r}", "removed", _feature_text(feature), "-", why))
    for name, f in after.items():
        if name not in before:
            why = (
                "every row must now carry it (a nullable feature too: an absent key is 422 "
                "missing_feature; callers send null for unknown)"
            )
            what = "added (nullable)" if f.nullable else "added (required)"
            out.append(Change("breaking", f"feature {name!r}", what, "-", _feature_text(f), why))
    for name, f in after.items():
        if name in before:
            out += _one_feature(before[name], f)
    common_old = [n for n in before if n in after]
    common_new = [n for n in after if n in before]
    if common_old != common_new:
        out.append(
            Change(
                "metadata",
                "features",
                "order",
                _s(common_old),
                _s(common_new),
                "/predict rows are objects; V2 column order is compared under inputs",
            )
        )
    return out


def _feature_text(f: Feature) -> str:
    parts = [f.dtype, "nullable" if f.nullable else "required"]
    if f.categories is not None:
        parts.append("{" + ", ".join(f.categories) + "}")
    if f.minimum is not None or f.maximum is not None:
        parts.append(f"[{_s(f.minimum)}, {_s(f.maximum)}]")
    return " ".join(parts)


def _one_feature(a: Feature, b: Feature) -> list[Change]:
    where = f"feature {a.name!r}"
    out: list[Change] = []
    if a.dtype != b.dtype:
        out.append(
            Change(
                "breaking",
                where,
                "dtype",
                a.dtype,
                b.dtype,
                "accepted JSON values and the V2 datatype change",
            )
        )
    if a.nullable != b.nullable:
        if b.nullable:
            out.append(
                Change("compatible", where, "nullable", "required", "nullable", "null is now accepted")
            )
        else:
            out.append(
                Change(
                    "breaking",
                    where,
                    "nullable",
                    "nullable",
                    "required",
                    "null is now refused (422 null_not_allowed)",
                )
            )
    if a.is_categorical != b.is_categorical:
        return out  # string <-> number: ranges and categories no longer compare
    out += _bound(where, "minimum", a.minimum, b.minimum, lower=True)
    out += _bound(where, "maximum", a.maximum, b.maximum, lower=False)
    if a.categories is not None and b.categories is not None:
        removed = [c for c in a.categories if c not in b.categories]
        added = [c for c in b.categories if c not in a.categories]
        if removed:
            out.append(
                Change(
                    "breaking",
                    where,
                    "categories removed",
                    _s(removed),
                    "-",
                    "these values are now refused (422 unknown_category)",
                )
            )
        if added:
            out.append(
                Change("compatible", where, "categories added", "-", _s(added), "more values accepted")
            )
        if not removed and not added and a.categories != b.categories:
            out.append(
                Change(
                    "metadata",
                    where,
                    "category order",
                    _s(a.categories),
                    _s(b.categories),
                    "not caller-visible",
                )
            )
    if a.missing_string != b.missing_string:
        out.append(
            Change(
                "model",
                where,
                "null fed as",
                repr(a.missing_string),
                repr(b.missing_string),
                "what the model sees for a null changes; the contract does not",
            )
        )
    if a.description != b.description:
        out.append(Change("metadata", where, "description", "...", "...", "documentation"))
    return out


def _bound(where: str, what: str, a: float | None, b: float | None, *, lower: bool) -> list[Change]:
    """A minimum (lower=True) or maximum that moved: narrower refuses values that passed."""
    if a == b:
        return []
    if b is None:
        narrowed = False
    elif a is None:
        narrowed = True
    else:
        narrowed = b > a if lower else b < a
    if narrowed:
        return [
            Change(
                "breaking",
                where,
                f"range {what}",
                _s(a),
                _s(b),
                "range narrowed: values that passed are refused (422 out_of_range)",
            )
        ]
    return [Change("compatible", where, f"range {what}", _s(a), _s(b), "range widened: more values accepted")]


def _input_changes(old: Contract, new: Contract) -> list[Change]:
    """The V2 surface: callers send the graph's input tensors by name, packed in column order."""
    before = {i.name: i for i in old.inputs}
    after = {i.name: i for i in new.inputs}
    out: list[Change] = []
    why = "V2 callers send exactly these tensors"
    for name, i in before.items():
        if name not in after:
            out.append(Change("breaking", f"input tensor {name!r}", "removed", _input_text(i), "-", why))
    for name, i in after.items():
        if name not in before:
            out.append(Change("breaking", f"input tensor {name!r}", "added", "-", _input_text(i), why))
            continue
        a = before[name]
        if a.features != i.features or a.rank != i.rank:
            out.append(
                Change(
                    "breaking",
                    f"input tensor {name!r}",
                    "layout",
                    _input_text(a),
                    _input_text(i),
                    "V2 callers pack these columns in this order and shape",
                )
            )
        elif a.dtype != i.dtype:
            out.append(
                Change("breaking", f"input tensor {name!r}", "datatype", a.dtype, i.dtype, "V2 datatype")
            )
    return out


def _input_text(i: ModelInput) -> str:
    shape = f"[N, {len(i.features)}]" if i.rank == 2 else "[N]"
    return f"{i.dtype} {shape} {_s(i.features)}"


def _output_changes(
    a: ClassificationOutput | RegressionOutput, b: ClassificationOutput | RegressionOutput
) -> list[Change]:
    if isinstance(a, ClassificationOutput) and isinstance(b, ClassificationOutput):
        return _classification_changes(a, b)
    if isinstance(a, RegressionOutput) and isinstance(b, RegressionOutput):
        return _regression_changes(a, b)
    return [Change("breaking", "output", "kind", a.kind, b.kind, "answers have another shape")]


def _classification_changes(a: ClassificationOutput, b: ClassificationOutput) -> list[Change]:
    out: list[Change] = []
    if set(a.labels) != set(b.labels):
        out.append(
            Change("breaking", "output", "label set", _s(a.labels), _s(b.labels), "callers see other classes")
        )
    elif a.labels != b.labels:
        out.append(
            Change(
                "breaking",
                "output",
                "label order",
                _s(a.labels),
                _s(b.labels),
                "V2 probability columns are in this order",
            )
        )
    if (a.label_tensor or "label") != (b.label_tensor or "label"):
        out.append(
            Change(
                "breaking",
                "output",
                "label output name",
                _s(a.label_tensor),
                _s(b.label_tensor),
                "V2 output name",
            )
        )
    out += _probability_changes(a.probability_tensor, b.probability_tensor)
    if a.probability_format != b.probability_format:
        out.append(
            Change(
                "model",
                "output",
                "probability format",
                a.probability_format,
                b.probability_format,
                "read by the server",
            )
        )
    if a.class_values != b.class_values:
        out.append(
            Change(
                "model", "output", "class values", _s(a.class_values), _s(b.class_values), "internal encoding"
            )
        )
    return out


def _probability_changes(a: str | None, b: str | None) -> list[Change]:
    if a == b:
        return []
    if a is None:
        return [Change("compatible", "output", "probabilities", "-", _s(b), "a new output")]
    if b is None:
        return [Change("breaking", "output", "probabilities", a, "-", "answers lose probabilities")]
    return [Change("breaking", "output", "probability output name", a, b, "V2 output name")]


def _regression_changes(a: RegressionOutput, b: RegressionOutput) -> list[Change]:
    out: list[Change] = []
    if a.name != b.name:
        out.append(
            Change(
                "breaking",
                "output",
                "name",
                a.name,
                b.name,
                "/predict answers carry the value under this key",
            )
        )
    if a.value_tensor != b.value_tensor:
        out.append(
            Change(
                "breaking", "output", "value output name", a.value_tensor, b.value_tensor, "V2 output name"
            )
        )
    if a.unit != b.unit:
        out.append(
            Change(
                "breaking",
                "output",
                "unit",
                _s(a.unit or None),
                _s(b.unit or None),
                "same numbers, another meaning",
            )
        )
    return out


def _metric_changes(old: Contract, new: Contract) -> list[Change]:
    before = {m.name: m for m in old.metrics}
    after = {m.name: m for m in new.metrics}
    out: list[Change] = []
    why = "the evidence about the model changed"
    for name in before.keys() | after.keys():
        a, b = before.get(name), after.get(name)
        if a is None or b is None or a != b:
            out.append(
                Change(
                    "compatible",
                    f"metric {name!r}",
                    "changed" if a and b else ("added" if b else "removed"),
                    _s(a.value if a else None),
                    _s(b.value if b else None),
                    why,
                )
            )
    out.sort(key=lambda c: c.where)
    if old.primary_metric != new.primary_metric:
        out.append(
            Change(
                "compatible", "metrics", "primary metric", _s(old.primary_metric), _s(new.primary_metric), why
            )
        )
    return out


def _baseline_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    why = "drift is judged against other reference distributions"
    out: list[Change] = []
    fa, fb = a.get("features") or {}, b.get("features") or {}
    for name in sorted(fa.keys() & fb.keys()):  # an added or removed feature is reported as such
        if fa[name] != fb[name]:
            out.append(Change("compatible", f"baseline {name!r}", "changed", "...", "...", why))
    if a.get("output") != b.get("output"):
        out.append(Change("compatible", "baseline output", "changed", "...", "...", why))
    return out


def _evidence_changes(old: Contract, new: Contract) -> list[Change]:
    out: list[Change] = []
    ta, tb = old.training or {}, new.training or {}
    if ta.get("fingerprint_sha256") != tb.get("fingerprint_sha256"):
        out.append(
            Change(
                "metadata",
                "training data",
                "fingerprint",
                _s(ta.get("fingerprint_sha256", "-"))[:12],
                _s(tb.get("fingerprint_sha256", "-"))[:12],
                "provenance; baselines and metrics (compared on their own) say what it changed",
            )
        )
    rest_a = {k: v for k, v in ta.items() if k != "fingerprint_sha256"}
    rest_b = {k: v for k, v in tb.items() if k != "fingerprint_sha256"}
    for key in sorted(rest_a.keys() | rest_b.keys()):
        if rest_a.get(key) != rest_b.get(key):
            out.append(
                Change(
                    "metadata",
                    "training",
                    key,
                    _short(rest_a.get(key)),
                    _short(rest_b.get(key)),
                    "provenance",
                )
            )
    if (old.lineage or {}) != (new.lineage or {}):
        out.append(Change("metadata", "lineage", "changed", "...", "...", "provenance"))
    if (old.golden or {}) != (new.golden or {}):
        out.append(
            Change(
                "metadata",
                "golden set",
                "tolerances",
                _short(old.golden),
                _short(new.golden),
                "release check",
            )
        )
    return out


def _short(value: object, limit: int = 40) -> str:
    text = _s(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_table(result: ContractDiff, sources: Sequence[str] = ()) -> str:
    """A plain-text table of every change, most severe first, and the verdict line."""
    lines: list[str] = []
    if sources:
        lines.append(f"old: {sources[0]}")
        if len(sources) > 1:
            lines.append(f"new: {sources[1]}")
    rows = [("LEVEL", "BUMP", "WHERE", "CHANGE", "OLD", "NEW", "WHY")]
    rows += [(c.level, BUMP_OF[c.level], c.where, c.what, c.old, c.new, c.why) for c in result.changes]
    if result.changes:
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:6])) + "  " + r[6])
    else:
        lines.append("no differences")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(result.verdict())
    return "\n".join(lines)


__all__ = [
    "BUMP_OF",
    "LEVELS",
    "Bump",
    "Change",
    "Contract",
    "ContractDiff",
    "Level",
    "diff",
    "format_table",
    "next_version",
    "parse_version",
    "version_bump",
]
