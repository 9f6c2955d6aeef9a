"""Model changelogs: generated from two manifests, and kept in step with what ships."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from onnxlambda_cli import changelog
from tests.conftest import MODELS

MODEL_NAMES = sorted(p.parent.name for p in MODELS.glob("*/manifest.json"))


def manifest(name: str = "penguins") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MODELS / name / "manifest.json").read_text())
    return loaded


def test_entry_lists_what_changed_between_versions() -> None:
    # GIVEN a new version: retrained on more data, a new island, one metric down, a library bumped
    old = manifest()
    new = copy.deepcopy(old)
    new["version"], new["sha256"] = "1.1.0", "b" * 64
    new["training"]["fingerprint_sha256"], new["training"]["rows"] = "c" * 64, 400
    new["features"][0]["categories"] = [*new["features"][0]["categories"], "Anvers"]
    new["metrics"][0]["value"] = old["metrics"][0]["value"] - 0.03
    new["training"]["library_versions"]["scikit-learn"] = "9.9.9"
    # WHEN the entry is written
    text = changelog.entry(new, old, why="retrained with the 2026 field season")
    # THEN it names the reason, the new model file, and each change against the old version
    assert text.startswith("## 1.1.0 - ")
    assert "**Why:** retrained with the 2026 field season" in text
    assert f"Replaces {old['version']}" in text
    assert "b" * 64 in text
    assert "400 rows" in text
    assert "**changed** from 344 rows" in text
    assert (
        "`island`: string {Biscoe, Dream, Torgersen} required -> string {Biscoe, Dream, Torgersen, Anvers}"
        in text
    )
    assert (
        f"accuracy {old['metrics'][0]['value'] - 0.03:g} (was {old['metrics'][0]['value']:g}, -0.03" in text
    )
    assert "scikit-learn 9.9.9 (was 1.9.1)" in text


def test_entry_for_an_unchanged_retrain_says_so() -> None:
    # GIVEN the same manifest twice THEN nothing is reported as changed
    text = changelog.entry(manifest(), manifest(), why="rebuild")
    assert "Features: unchanged" in text
    assert "Libraries: unchanged" in text
    assert "(unchanged)" in text
    assert "**changed**" not in text


def test_entry_without_a_reason_says_it_is_missing() -> None:
    assert "NOT GIVEN" in changelog.entry(manifest())


def test_cli_reads_the_previous_manifest_from_git(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN compared with the committed manifest at HEAD (git:<rev> means the same path)
    assert changelog.main(["git:HEAD", str(MODELS / "penguins" / "manifest.json"), "--why", "x"]) == 0
    # THEN an entry comes out for the current version
    assert f"## {manifest()['version']} - " in capsys.readouterr().out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_shipped_model_version_is_in_its_changelog(name: str) -> None:
    # GIVEN the manifest that ships THEN its CHANGELOG.md has a section for that version and file,
    # with a reason: a new model version cannot ship unexplained
    text = (MODELS / name / "CHANGELOG.md").read_text()
    current = manifest(name)
    section = text.split(f"## {current['version']} - ", 1)
    assert len(section) == 2, f"models/{name}/CHANGELOG.md has no section for {current['version']}"
    body = section[1].split("\n## ", 1)[0]
    assert current["sha256"] in body
    assert "**Why:**" in body
    assert "NOT GIVEN" not in body


def test_an_imported_model_without_a_test_set_gets_an_entry_that_says_so() -> None:
    # GIVEN an imported model's manifest (lineage kind "imported", no training script) without metrics
    imported = manifest("wine")
    assert imported["lineage"]["kind"] == "imported"
    imported["metrics"], imported["primary_metric"] = [], None
    # WHEN its first entry is written
    text = changelog.new_changelog(imported, why="first import")
    # THEN it names the imported file instead of a training script, and the missing metrics
    assert text.startswith("# wine model changelog\n")
    assert "- Imported from `model.onnx` by `onnxlambda import` (served byte for byte)" in text
    assert "Trained by" not in text
    assert "- Metrics: none (no held-out test set was given)" in text
    assert "**Why:** first import" in text
