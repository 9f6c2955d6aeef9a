"""`make build` for real: switching models with `sam build --cached`, and the stamp on the build output.

The model-switch test runs the project's own Makefile and layers/model/Makefile with the real SAM
CLI, in a copy of the repository holding only the model layer (its own build and cache
directories), so it never disturbs the build the other integration tests use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from onnxlambda_cli import stamp
from onnxlambda_cli.cloudformation import load_template
from tests.conftest import MODELS, ROOT

COPIED = (
    "Makefile",
    "samconfig.toml",
    "pyproject.toml",
    *(f"requirements-{n}.txt" for n in ("dev", "sam", "runtime")),
)


def sha(model: str) -> str:
    return str(json.loads((MODELS / model / "manifest.json").read_text())["sha256"])


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Makefiles, samconfig, models and venvs, and a template with the model layer alone."""
    repo = tmp_path_factory.mktemp("repo")
    # copy2 keeps mtimes: `make setup`'s stamps stay newer than the requirement files they depend on
    for name in COPIED:
        shutil.copy2(ROOT / name, repo / name)
    (repo / "layers" / "core").mkdir(parents=True)
    shutil.copy2(ROOT / "layers" / "core" / "requirements.txt", repo / "layers" / "core" / "requirements.txt")
    shutil.copytree(ROOT / "layers" / "model", repo / "layers" / "model")
    shutil.copytree(MODELS, repo / "models", ignore=shutil.ignore_patterns(".selected", "__pycache__"))
    for venv in (".venv", ".venv-sam", ".venv-runtime"):
        (repo / venv).symlink_to(ROOT / venv)
    template = load_template((ROOT / "template.yaml").read_text())
    template.pop("Globals")
    template["Resources"] = {"ModelLayer": template["Resources"]["ModelLayer"]}
    template["Outputs"] = {}
    (repo / "layer-only.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return repo


def make_build(repo: Path, model: str) -> Path:
    build = repo / "build"
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MODEL"}}
    subprocess.run(
        ["make", "build", f"MODEL={model}", "TEMPLATE=layer-only.yaml", "BUILD_DIR=build", "CACHE_DIR=cache"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return build


def test_switching_models_builds_the_model_asked_for_every_time(repo_copy: Path) -> None:
    # GIVEN `make build` with sam's cache on (samconfig.toml: cached = true), three times in a row
    for model in ("penguins", "diabetes", "penguins"):
        build = make_build(repo_copy, model)
        # THEN the layer holds the model asked for, not the one the cache holds from the last build
        served = build / "ModelLayer" / "model"
        assert hashlib.sha256((served / "model.onnx").read_bytes()).hexdigest() == sha(model)
        assert json.loads((served / "manifest.json").read_text())["sha256"] == sha(model)
        # AND the stamp names it
        built = load_template((build / "template.yaml").read_text())
        assert built["Mappings"]["Release"]["Build"]["ModelSha256"] == sha(model)
    # AND the cache was in use (the build did not just ignore it)
    assert any((repo_copy / "cache").iterdir())


def test_the_build_the_other_tests_use_is_stamped(build_dir: Path) -> None:
    # GIVEN the `make build` output (dev, penguins) THEN it carries the stamp, pins and digests
    built = load_template((build_dir / "template.yaml").read_text())
    assert built["Mappings"]["Release"]["Build"]["ModelSha256"] == sha("penguins")
    [rule] = built["Rules"]["StampedBuild"]["Assertions"]
    assert rule["Assert"] == {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}
    digests = stamp.version_digests(built)
    assert all(len(d) == 64 for d in digests.values())
    # AND each digest is the one its built artifacts give (nothing changed since the stamp)
    values = {name: p["Default"] for name, p in built["Parameters"].items() if "Default" in p}
    release = built["Mappings"]["Release"]["Build"]
    again = stamp.Stamp(release["ModelVersion"], release["ModelSha256"], release["CodeRevision"], "dev")
    artifacts = stamp.artifact_digests(built, build_dir)
    for function, value in digests.items():
        assert stamp.version_digest(built, function, values, artifacts, again) == value
