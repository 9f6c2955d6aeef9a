"""`onnxlambda check`: ready means able to predict, checked on a model directory as the function
loads it, before a build can be deployed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onnxlambda_cli.check import main, problems
from tests.conftest import MODELS


def copy_of(model: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(MODELS / model, tmp_path / model))


@pytest.mark.parametrize(
    "model_dir", sorted(p.parent for p in MODELS.glob("*/manifest.json")), ids=lambda p: p.name
)
def test_every_shipped_model_is_ready(model_dir: Path) -> None:
    assert problems(model_dir) == []


def test_a_model_that_answers_differently_from_its_golden_set_is_not_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a model directory whose golden set expects another class for its first case
    model_dir = copy_of("penguins", tmp_path)
    golden = json.loads((model_dir / "golden.json").read_text())
    expected = golden["cases"][0]["expected"]
    expected["label"] = "Gentoo" if expected["label"] != "Gentoo" else "Adelie"
    (model_dir / "golden.json").write_text(json.dumps(golden))
    # WHEN checked THEN it loads, yet is not ready, and the difference is named
    assert main([str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert "NOT READY" in err
    assert "case 0" in err
    assert "label" in err


def test_a_model_the_manifest_misdescribes_is_not_ready(tmp_path: Path) -> None:
    # GIVEN the wine export's manifest claiming a [N, C] probability tensor where the graph has a ZipMap
    model_dir = copy_of("wine", tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["output"]["probability_format"] = "tensor"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    # THEN it is not loadable, with the load check's reason
    [problem] = problems(model_dir)
    assert problem.startswith("not loadable: the model does not match its manifest")
    assert "ZipMap" in problem
