"""Golden-set comparison: the shipped model reproduces its golden set; any drift is listed."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from onnxlambda.contract.manifest import GoldenSet, Manifest, load_golden, load_manifest
from onnxlambda.release.golden import check_golden_set, check_model_ref, compare_predictions, golden_request
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from tests.conftest import MODELS


def load(model_dir: Path) -> tuple[Manifest, GoldenSet]:
    manifest = load_manifest(model_dir)
    return manifest, load_golden(model_dir, manifest)


def served_body(model_dir: Path) -> dict[str, Any]:
    """What /predict answers for the golden request, computed by the real model in-process."""
    _, golden = load(model_dir)
    settings = Settings(
        model_dir, max_rows=1000, max_body_bytes=1 << 20, max_error_details=100, ort_intra_op_threads=1
    )
    return Service.from_settings(settings).predict(golden_request(golden), "golden")


@pytest.mark.parametrize("model", sorted(p.parent.name for p in MODELS.glob("*/manifest.json")))
def test_the_shipped_model_reproduces_its_golden_set(model: str) -> None:
    # GIVEN a shipped model and its golden set
    model_dir = MODELS / model
    manifest, golden = load(model_dir)
    # WHEN the real model answers the golden request THEN nothing differs
    assert check_golden_set(manifest, golden) == []
    assert compare_predictions(manifest, golden, served_body(model_dir)) == []


def test_a_probability_beyond_tolerance_is_listed_and_one_within_is_not(penguins_dir: Path) -> None:
    manifest, golden = load(penguins_dir)
    body = served_body(penguins_dir)
    tolerance = manifest.golden.probability_tolerance
    # GIVEN case 0 off by half the tolerance and case 1 off by twice the tolerance
    body["predictions"][0]["probabilities"]["Adelie"] += tolerance / 2
    body["predictions"][1]["probabilities"]["Chinstrap"] += tolerance * 2
    # THEN only case 1 is a mismatch, naming the class and both values
    [mismatch] = compare_predictions(manifest, golden, body)
    assert (mismatch.case, mismatch.field) == (1, "probabilities.Chinstrap")
    assert "case 1 probabilities.Chinstrap: expected" in str(mismatch)


def test_a_changed_label_and_a_missing_probability_are_listed(penguins_dir: Path) -> None:
    manifest, golden = load(penguins_dir)
    body = served_body(penguins_dir)
    body["predictions"][2]["label"] = "Gentoo"
    del body["predictions"][3]["probabilities"]["Gentoo"]
    body["predictions"][4]["probabilities"]["Adelie"] = math.nan
    found = {(m.case, m.field) for m in compare_predictions(manifest, golden, body)}
    assert found == {(2, "label"), (3, "probabilities.Gentoo"), (4, "probabilities.Adelie")}


def test_a_regression_value_is_compared_with_the_value_tolerance(diabetes_dir: Path) -> None:
    manifest, golden = load(diabetes_dir)
    body = served_body(diabetes_dir)
    name = manifest.output.name  # type: ignore[union-attr]
    body["predictions"][0][name] += manifest.golden.value_tolerance / 2
    body["predictions"][1][name] += manifest.golden.value_tolerance * 2
    assert [(m.case, m.field) for m in compare_predictions(manifest, golden, body)] == [(1, name)]


def test_a_different_model_identity_or_row_count_is_listed(penguins_dir: Path) -> None:
    manifest, golden = load(penguins_dir)
    body = served_body(penguins_dir)
    tampered = copy.deepcopy(body)
    tampered["model"]["sha256"] = "0" * 64
    assert [m.field for m in compare_predictions(manifest, golden, tampered)] == ["model.sha256"]
    short = copy.deepcopy(body)
    short["predictions"].pop()
    [mismatch] = compare_predictions(manifest, golden, short)
    assert (mismatch.field, mismatch.expected, mismatch.actual) == (
        "predictions",
        len(golden.cases),
        len(golden.cases) - 1,
    )
    assert [m.field for m in compare_predictions(manifest, golden, ["not", "an", "object"])] == ["body"]


def test_model_ref_and_golden_set_identity(penguins_dir: Path, diabetes_dir: Path) -> None:
    manifest, golden = load(penguins_dir)
    _, other_golden = load(diabetes_dir)
    # THEN a golden set written for another model is refused, field by field
    assert {m.field for m in check_golden_set(manifest, other_golden)} == {
        "golden.model.name",
        "golden.model.version",
        "golden.model.sha256",
    } - ({"golden.model.version"} if other_golden.model_version == manifest.version else set())
    assert [m.field for m in check_model_ref(manifest, None)] == [
        "model.name",
        "model.version",
        "model.sha256",
    ]
    assert (
        check_model_ref(
            manifest, {"name": "penguins", "version": manifest.version, "sha256": manifest.sha256}
        )
        == []
    )
    assert len(golden_request(golden)["instances"]) == len(golden.cases)
