"""The contract diff: every category of difference, its level and bump, and the semver rule.

Table-driven over edits of the shipped manifests. For the request-side categories the level is
also checked against the validator itself: a "compatible" change must accept every probe row the
old contract accepted, a "breaking" one must refuse at least one of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from onnxlambda.contract.manifest import Manifest, upgrade
from onnxlambda.contract.strict import build
from onnxlambda.serving.validation import Validator
from onnxlambda_cli.contract_diff import (
    Contract,
    diff,
    format_table,
    next_version,
    version_bump,
)
from tests.conftest import MODELS, golden_rows
from tests.unit.release.candidates import manifest_json

Edit = Callable[[dict[str, Any]], None]


def feature(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in m["features"] if f["name"] == name)


def tensor(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in m["inputs"] if i["name"] == name)


def remove_feature(name: str) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["features"] = [f for f in m["features"] if f["name"] != name]
        m["inputs"] = [i for i in m["inputs"] if i["features"] != [name]]
        del m["baselines"]["features"][name]

    return edit


def add_feature(name: str, *, nullable: bool) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["features"].append(
            {"name": name, "dtype": "float32", "nullable": nullable, "minimum": 0.0, "maximum": 10.0}
        )
        m["inputs"].append({"name": name, "dtype": "float32", "features": [name]})
        m["baselines"]["features"][name] = {
            "kind": "numeric",
            "count": 10,
            "missing": 0,
            "mean": 5.0,
            "std_dev": 1.0,
            "min": 0.0,
            "max": 10.0,
            "cut_points": [5.0],
            "counts": [5, 5],
        }

    return edit


def set_feature(name: str, **values: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        feature(m, name).update(values)

    return edit


def set_dtype(name: str, dtype: str) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        feature(m, name)["dtype"] = dtype
        tensor(m, name)["dtype"] = dtype

    return edit


def set_top(**values: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m.update(values)

    return edit


def set_output(**values: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["output"].update(values)

    return edit


def pack(*names: str, tensor_name: str = "numbers") -> Edit:
    """Feed the named features through one packed [N, F] tensor instead of one tensor each."""

    def edit(m: dict[str, Any]) -> None:
        m["inputs"] = [i for i in m["inputs"] if i["features"][0] not in names]
        m["inputs"].append({"name": tensor_name, "dtype": "float32", "features": list(names)})

    return edit


def set_metric(name: str, value: float) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        next(x for x in m["metrics"] if x["name"] == name)["value"] = value

    return edit


def add_metric(m: dict[str, Any]) -> None:
    m["metrics"].append({"name": "balanced_accuracy", "value": 0.98, "higher_is_better": True})


def shift_baseline(name: str) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["baselines"]["features"][name]["counts"][0] += 1

    return edit


def set_training(**values: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["training"].update(values)

    return edit


def chain(*edits: Edit) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        for e in edits:
            e(m)

    return edit


NEW_SHA = "f" * 64
PENGUIN_LABELS = ["Adelie", "Chinstrap", "Gentoo"]

# (id, model, edit of the new manifest, expected {(level, where, what)}, required bump)
CASES: list[tuple[str, str, Edit, set[tuple[str, str, str]], str]] = [
    (
        "feature removed",
        "penguins",
        remove_feature("sex"),
        {("breaking", "feature 'sex'", "removed"), ("breaking", "input tensor 'sex'", "removed")},
        "major",
    ),
    (
        "new required feature",
        "penguins",
        add_feature("age", nullable=False),
        {("breaking", "feature 'age'", "added (required)"), ("breaking", "input tensor 'age'", "added")},
        "major",
    ),
    (
        "new nullable feature (every key is required here)",
        "penguins",
        add_feature("age", nullable=True),
        {("breaking", "feature 'age'", "added (nullable)"), ("breaking", "input tensor 'age'", "added")},
        "major",
    ),
    (
        "dtype changed",
        "penguins",
        set_dtype("body_mass_g", "float64"),
        {
            ("breaking", "feature 'body_mass_g'", "dtype"),
            ("breaking", "input tensor 'body_mass_g'", "datatype"),
        },
        "major",
    ),
    (
        "range narrowed (maximum)",
        "penguins",
        set_feature("bill_length_mm", maximum=60.0),
        {("breaking", "feature 'bill_length_mm'", "range maximum")},
        "major",
    ),
    (
        "range narrowed (minimum)",
        "penguins",
        set_feature("body_mass_g", minimum=2000.0),
        {("breaking", "feature 'body_mass_g'", "range minimum")},
        "major",
    ),
    (
        "range widened",
        "penguins",
        set_feature("bill_length_mm", minimum=10.0, maximum=90.0),
        {
            ("compatible", "feature 'bill_length_mm'", "range minimum"),
            ("compatible", "feature 'bill_length_mm'", "range maximum"),
        },
        "minor",
    ),
    (
        "bound removed",
        "penguins",
        set_feature("flipper_length_mm", maximum=None),
        {("compatible", "feature 'flipper_length_mm'", "range maximum")},
        "minor",
    ),
    (
        "category removed",
        "penguins",
        set_feature("island", categories=["Biscoe", "Dream"]),
        {("breaking", "feature 'island'", "categories removed")},
        "major",
    ),
    (
        "category added",
        "penguins",
        set_feature("island", categories=["Biscoe", "Dream", "Torgersen", "Anvers"]),
        {("compatible", "feature 'island'", "categories added")},
        "minor",
    ),
    (
        "category order only",
        "penguins",
        set_feature("island", categories=["Torgersen", "Dream", "Biscoe"]),
        {("metadata", "feature 'island'", "category order")},
        "none",
    ),
    (
        "nullable -> required",
        "penguins",
        set_feature("sex", nullable=False),
        {("breaking", "feature 'sex'", "nullable")},
        "major",
    ),
    (
        "required -> nullable",
        "penguins",
        set_feature("island", nullable=True),
        {("compatible", "feature 'island'", "nullable")},
        "minor",
    ),
    (
        "extra fields ignored",
        "penguins",
        set_top(extra_fields="ignore"),
        {("compatible", "request", "extra fields")},
        "minor",
    ),
    (
        "null fed as another token",
        "penguins",
        set_feature("sex", missing_string="missing"),
        {("model", "feature 'sex'", "null fed as")},
        "patch",
    ),
    (
        "input layout: features packed into one tensor",
        "penguins",
        pack("bill_length_mm", "bill_depth_mm"),
        {
            ("breaking", "input tensor 'bill_length_mm'", "removed"),
            ("breaking", "input tensor 'bill_depth_mm'", "removed"),
            ("breaking", "input tensor 'numbers'", "added"),
        },
        "major",
    ),
    (
        "label order changed",
        "penguins",
        set_output(labels=["Gentoo", "Chinstrap", "Adelie"]),
        {("breaking", "output", "label order")},
        "major",
    ),
    (
        "label set changed",
        "penguins",
        set_output(labels=["Adelie", "Chinstrap", "Emperor"]),
        {("breaking", "output", "label set")},
        "major",
    ),
    (
        "probabilities dropped",
        "penguins",
        set_output(probability_tensor=None),
        {("breaking", "output", "probabilities")},
        "major",
    ),
    (
        "label output renamed",
        "penguins",
        set_output(label_tensor="output_label"),
        {("breaking", "output", "label output name")},
        "major",
    ),
    (
        "probability format (ZipMap) only",
        "penguins",
        set_output(probability_format="zipmap"),
        {("model", "output", "probability format")},
        "patch",
    ),
    (
        "output kind changed",
        "penguins",
        set_top(output=manifest_json("diabetes")["output"]),
        {("breaking", "output", "kind")},
        "major",
    ),
    (
        "regression output renamed",
        "diabetes",
        set_output(name="progression"),
        {("breaking", "output", "name")},
        "major",
    ),
    (
        "regression unit changed",
        "diabetes",
        set_output(unit="mmol/L"),
        {("breaking", "output", "unit")},
        "major",
    ),
    (
        "model renamed",
        "penguins",
        set_top(name="penguins-v2"),
        {("breaking", "model", "renamed")},
        "major",
    ),
    (
        "metric changed",
        "penguins",
        set_metric("log_loss", 0.05),
        {("compatible", "metric 'log_loss'", "changed")},
        "minor",
    ),
    (
        "metric added",
        "penguins",
        add_metric,
        {("compatible", "metric 'balanced_accuracy'", "added")},
        "minor",
    ),
    (
        "baseline changed",
        "penguins",
        shift_baseline("body_mass_g"),
        {("compatible", "baseline 'body_mass_g'", "changed")},
        "minor",
    ),
    (
        "training data changed",
        "penguins",
        set_training(fingerprint_sha256="0" * 64),
        {("metadata", "training data", "fingerprint")},
        "none",
    ),
    ("weights only", "penguins", set_top(sha256=NEW_SHA), {("model", "model.onnx", "sha256")}, "patch"),
    (
        "description only",
        "penguins",
        set_top(description="Better words."),
        {("metadata", "model", "description")},
        "none",
    ),
    ("identical", "penguins", lambda m: None, set(), "none"),
]


def contracts(model: str, edit: Edit) -> tuple[Contract, Contract, dict[str, Any], dict[str, Any]]:
    old = manifest_json(model)
    new = copy.deepcopy(old)
    edit(new)
    return Contract.from_json(old), Contract.from_json(new), old, new


@pytest.mark.parametrize(
    ("model", "edit", "expected", "bump"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_difference_is_classified(
    model: str, edit: Edit, expected: set[tuple[str, str, str]], bump: str
) -> None:
    # GIVEN a shipped manifest and a copy with one kind of change
    old, new, _, _ = contracts(model, edit)
    # WHEN they are diffed
    result = diff(old, new)
    # THEN exactly the expected changes are found, at the expected levels, needing the expected bump
    assert {(c.level, c.where, c.what) for c in result.changes} == expected
    assert result.required_bump == bump
    # AND the table lists each of them
    table = format_table(result)
    for level, where, what in expected:
        assert any(level in line and where in line and what in line for line in table.splitlines()), table


# -- the level agrees with what the validator accepts ---------------------------------------------


def probes(manifest: Manifest) -> list[dict[str, Any]]:
    """Rows the manifest's contract accepts at its edges: every bound, category and null, plus an
    ordinary row; and one with an extra field (accepted only when extra fields are ignored)."""
    base = dict(golden_rows(MODELS / manifest.name)[0])
    rows = [dict(base)]
    for f in manifest.features:
        values: list[Any] = [f.minimum, f.maximum] if not f.is_categorical else list(f.categories or [])
        if f.nullable:
            values.append(None)
        rows += [{**base, f.name: v} for v in values if v is not None or f.nullable]
    rows.append({**base, "not_a_feature": 1})
    return rows


def manifest_of(data: dict[str, Any]) -> Manifest:
    return build(Manifest, upgrade(copy.deepcopy(data)))


def accepted(manifest: Manifest, rows: list[dict[str, Any]]) -> list[bool]:
    batch = Validator(manifest, max_rows=10_000).validate_partial(rows)
    return [i not in batch.errors for i in range(len(rows))]


REQUEST_SIDE = [
    c
    for c in CASES
    if c[1] == "penguins"
    and any(where.startswith("feature") or where == "request" for _, where, _ in c[3])
    and c[0] not in {"dtype changed", "null fed as another token", "category order only"}
]


@pytest.mark.parametrize(
    ("edit", "expected"), [(c[2], c[3]) for c in REQUEST_SIDE], ids=[c[0] for c in REQUEST_SIDE]
)
def test_levels_agree_with_the_validator(edit: Edit, expected: set[tuple[str, str, str]]) -> None:
    # GIVEN probe rows at the edges of the old contract, and the old and new manifests
    _, _, old_json, new_json = contracts("penguins", edit)
    old, new = manifest_of(old_json), manifest_of(new_json)
    rows = probes(old)
    before = accepted(old, rows)
    after = accepted(new, rows)
    lost = [row for row, a, b in zip(rows, before, after, strict=True) if a and not b]
    # THEN a breaking change refuses some row that was accepted; a compatible one refuses none
    if any(level == "breaking" for level, _, _ in expected):
        assert lost, "classified breaking, but every request that worked still works"
    else:
        assert not lost, f"classified compatible, but these rows are now refused: {lost}"


# -- GET /model bodies, the semver rule -----------------------------------------------------------


def test_a_get_model_body_compares_without_baselines() -> None:
    # GIVEN the public contract (what GET /model serves) on one side
    full = manifest_json("penguins")
    public = manifest_of(full).public()
    # WHEN it is diffed against the full manifest
    result = diff(Contract.from_json(public), Contract.from_json(full))
    # THEN nothing differs, and the table says the baselines were not compared
    assert result.changes == []
    assert result.notes == ["baselines not compared: a GET /model body does not carry them"]


@pytest.mark.parametrize(
    ("edit", "new_version", "ok"),
    [
        (set_feature("island", categories=["Biscoe", "Dream"]), "1.1.0", False),  # breaking, minor bump
        (set_feature("island", categories=["Biscoe", "Dream"]), "1.0.1", False),
        (set_feature("island", categories=["Biscoe", "Dream"]), "2.0.0", True),
        (set_metric("accuracy", 0.99), "1.0.1", False),  # compatible, patch bump
        (set_metric("accuracy", 0.99), "1.1.0", True),
        (set_metric("accuracy", 0.99), "2.0.0", True),  # a bigger bump than needed is allowed
        (set_top(sha256=NEW_SHA), "1.0.0", False),  # new weights under the same version
        (set_top(sha256=NEW_SHA), "1.0.1", True),
        (set_top(sha256=NEW_SHA), "0.9.0", False),  # a downgrade never passes
        (set_top(description="Better words."), "1.0.0", True),  # provenance and docs need no bump
        (set_top(description="Better words."), "0.9.0", False),
        (lambda m: None, "1.0.0", True),  # the same model again
    ],
)
def test_the_version_must_bump_at_least_as_much_as_the_change(edit: Edit, new_version: str, ok: bool) -> None:
    old, new, _, _ = contracts("penguins", chain(edit, set_top(version=new_version)))
    result = diff(old, new)
    assert result.bump_ok is ok
    assert result.verdict().endswith("REFUSED") is (not ok and result.level is not None)


def test_verdict_names_the_smallest_allowed_version() -> None:
    old, new, _, _ = contracts(
        "penguins", chain(set_feature("sex", nullable=False), set_top(version="1.1.0"))
    )
    verdict = diff(old, new).verdict()
    assert verdict == (
        "penguins 1.0.0 -> 1.1.0: breaking; needs a major bump (at least 2.0.0), "
        "1.1.0 is a minor bump: REFUSED"
    )


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        ("1.2.3", "2.0.0", "major"),
        ("1.2.3", "1.3.0", "minor"),
        ("1.2.3", "1.2.4", "patch"),
        ("1.2.3", "1.2.3", "none"),
        ("1.2.3", "1.2.2", "downgrade"),
        ("1.9.0", "1.10.0", "minor"),  # numbers, not strings
        ("0.1.0", "1.0.0", "major"),
    ],
)
def test_version_bump(old: str, new: str, bump: str) -> None:
    assert version_bump(old, new) == bump


def test_next_version() -> None:
    assert [next_version("1.2.3", b) for b in ("major", "minor", "patch", "none")] == [
        "2.0.0",
        "1.3.0",
        "1.2.4",
        "1.2.3",
    ]


def test_not_a_contract_is_refused_with_where() -> None:
    data = manifest_json("penguins")
    data["features"][0]["dtype"] = "complex128"
    with pytest.raises(ValueError, match=r"dtype"):
        Contract.from_json(data)
    with pytest.raises(ValueError, match=r"version"):
        Contract.from_json({**manifest_json("penguins"), "version": "1.0"})


def test_json_output_lists_level_and_bump_of_each_change() -> None:
    old, new, _, _ = contracts(
        "penguins", chain(set_feature("island", nullable=True), set_top(version="1.1.0"))
    )
    body = diff(old, new).to_dict()
    assert body["classification"] == "compatible"
    assert (body["required_bump"], body["actual_bump"], body["bump_ok"]) == ("minor", "minor", True)
    assert body["changes"] == [
        {
            "level": "compatible",
            "bump": "minor",
            "where": "feature 'island'",
            "what": "nullable",
            "old": "required",
            "new": "nullable",
            "why": "null is now accepted",
        }
    ]
    assert body["old"]["version"] == "1.0.0"
    assert body["new"]["version"] == "1.1.0"


def test_a_metadata_only_change_needs_no_bump_but_never_a_downgrade() -> None:
    old, new, _, _ = contracts("penguins", set_training(fingerprint_sha256="0" * 64))
    assert diff(old, new).verdict() == "penguins 1.0.0 -> 1.0.0: metadata-only; no bump needed: ok"
    old, new, _, _ = contracts("penguins", chain(set_top(description="x"), set_top(version="0.9.0")))
    assert diff(old, new).verdict() == "penguins 1.0.0 -> 0.9.0: metadata-only; 0.9.0 is a downgrade: REFUSED"
