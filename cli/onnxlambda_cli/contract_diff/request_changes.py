"""The request side of a contract diff: the model's identity, its features, its V2 input tensors.

Every row must carry every feature key, so an added feature is breaking even when nullable (see
the package docstring); a narrower range, a removed category or nullable -> required refuses
requests that passed; the V2 surface is the graph's input tensors by name, layout and datatype.
"""

from __future__ import annotations

from onnxlambda.contract.manifest import Feature, ModelInput
from onnxlambda_cli.contract_diff.contract import Change, Contract, shown


def model_changes(old: Contract, new: Contract) -> list[Change]:
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


def feature_changes(old: Contract, new: Contract) -> list[Change]:
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
                shown(common_old),
                shown(common_new),
                "/predict rows are objects; V2 column order is compared under inputs",
            )
        )
    return out


def _feature_text(f: Feature) -> str:
    parts = [f.dtype, "nullable" if f.nullable else "required"]
    if f.categories is not None:
        parts.append("{" + ", ".join(f.categories) + "}")
    if f.minimum is not None or f.maximum is not None:
        parts.append(f"[{shown(f.minimum)}, {shown(f.maximum)}]")
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
                    shown(removed),
                    "-",
                    "these values are now refused (422 unknown_category)",
                )
            )
        if added:
            out.append(
                Change("compatible", where, "categories added", "-", shown(added), "more values accepted")
            )
        if not removed and not added and a.categories != b.categories:
            out.append(
                Change(
                    "metadata",
                    where,
                    "category order",
                    shown(a.categories),
                    shown(b.categories),
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
                shown(a),
                shown(b),
                "range narrowed: values that passed are refused (422 out_of_range)",
            )
        ]
    return [
        Change(
            "compatible", where, f"range {what}", shown(a), shown(b), "range widened: more values accepted"
        )
    ]


def input_changes(old: Contract, new: Contract) -> list[Change]:
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
    return f"{i.dtype} {shape} {shown(i.features)}"


__all__ = ["feature_changes", "input_changes", "model_changes"]
