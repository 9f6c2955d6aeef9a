"""The answer side of a contract diff: outputs, metrics, baselines and provenance.

Output kind, labels and their order, output names and unit are what callers read (breaking);
metrics and baselines are evidence about the model (compatible); the internal encoding of an
output is the model's (patch); provenance and golden tolerances answer nothing (metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onnxlambda.contract.manifest import ClassificationOutput, RegressionOutput
from onnxlambda_cli.contract_diff.contract import Change, Contract, shortened, shown


def output_changes(
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
            Change(
                "breaking",
                "output",
                "label set",
                shown(a.labels),
                shown(b.labels),
                "callers see other classes",
            )
        )
    elif a.labels != b.labels:
        out.append(
            Change(
                "breaking",
                "output",
                "label order",
                shown(a.labels),
                shown(b.labels),
                "V2 probability columns are in this order",
            )
        )
    if (a.label_tensor or "label") != (b.label_tensor or "label"):
        out.append(
            Change(
                "breaking",
                "output",
                "label output name",
                shown(a.label_tensor),
                shown(b.label_tensor),
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
                "model",
                "output",
                "class values",
                shown(a.class_values),
                shown(b.class_values),
                "internal encoding",
            )
        )
    return out


def _probability_changes(a: str | None, b: str | None) -> list[Change]:
    if a == b:
        return []
    if a is None:
        return [Change("compatible", "output", "probabilities", "-", shown(b), "a new output")]
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
                shown(a.unit or None),
                shown(b.unit or None),
                "same numbers, another meaning",
            )
        )
    return out


def metric_changes(old: Contract, new: Contract) -> list[Change]:
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
                    shown(a.value if a else None),
                    shown(b.value if b else None),
                    why,
                )
            )
    out.sort(key=lambda c: c.where)
    if old.primary_metric != new.primary_metric:
        out.append(
            Change(
                "compatible",
                "metrics",
                "primary metric",
                shown(old.primary_metric),
                shown(new.primary_metric),
                why,
            )
        )
    return out


def baseline_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    why = "drift is judged against other reference distributions"
    out: list[Change] = []
    fa, fb = a.get("features") or {}, b.get("features") or {}
    for name in sorted(fa.keys() & fb.keys()):  # an added or removed feature is reported as such
        if fa[name] != fb[name]:
            out.append(Change("compatible", f"baseline {name!r}", "changed", "...", "...", why))
    if a.get("output") != b.get("output"):
        out.append(Change("compatible", "baseline output", "changed", "...", "...", why))
    return out


def evidence_changes(old: Contract, new: Contract) -> list[Change]:
    out: list[Change] = []
    ta, tb = old.training or {}, new.training or {}
    if ta.get("fingerprint_sha256") != tb.get("fingerprint_sha256"):
        out.append(
            Change(
                "metadata",
                "training data",
                "fingerprint",
                shown(ta.get("fingerprint_sha256", "-"))[:12],
                shown(tb.get("fingerprint_sha256", "-"))[:12],
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
                    shortened(rest_a.get(key)),
                    shortened(rest_b.get(key)),
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
                shortened(old.golden),
                shortened(new.golden),
                "release check",
            )
        )
    return out


__all__ = ["baseline_changes", "evidence_changes", "metric_changes", "output_changes"]
