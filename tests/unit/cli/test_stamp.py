"""`onnxlambda release stamp` (make build) on a sam build output: stamp, pinned settings, digests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxlambda_cli import stamp
from onnxlambda_cli.cloudformation import load_template
from onnxlambda_cli.release import command
from tests.conftest import MODELS, ROOT

URI = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def make_build(build: Path, model: str = "penguins") -> Path:
    """What `sam build` leaves: the template with CodeUri/ContentUri = built folders, and the folders."""
    template = load_template((ROOT / "template.yaml").read_text())
    for name, resource in template["Resources"].items():
        if resource["Type"] in URI:
            resource["Properties"][URI[resource["Type"]]] = name
            (build / name).mkdir(parents=True)
            (build / name / "app.py").write_text(f"# {name}\n")
    shutil.copytree(MODELS / model, build / "ModelLayer" / "model", dirs_exist_ok=True)
    (build / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return build


def stamped(build: Path) -> dict[str, Any]:
    return load_template((build / "template.yaml").read_text())


def test_stamping_writes_the_release_pins_the_settings_and_names_each_version(tmp_path: Path) -> None:
    # GIVEN a build of the penguins model
    build = make_build(tmp_path / "build")
    # WHEN it is stamped for prod
    done, _ = stamp.stamp_build(build, "prod", MODELS / "penguins", revision="abc1234")
    template = stamped(build)
    manifest = json.loads((MODELS / "penguins" / "manifest.json").read_text())
    # THEN the release stamp is template text, naming the model in the layer and the commit
    assert template["Mappings"]["Release"]["Build"] == {
        "ModelVersion": manifest["version"],
        "ModelSha256": manifest["sha256"],
        "CodeRevision": "abc1234",
    }
    assert (done.stage, done.model_sha256) == ("prod", manifest["sha256"])
    # AND prod's settings are the only values its parameters accept
    assert stamp.pinned(template)["LogLevel"] == "INFO"
    assert template["Parameters"]["LogLevel"]["AllowedValues"] == ["INFO"]
    # AND every aliased function has its digest, and a description that names it
    digests = stamp.version_digests(template)
    assert set(digests) == {"ApiFunction", "BatchFunction", "BatchRangeFunction", "MonitorFunction"}
    api = template["Resources"]["ApiFunction"]["Properties"]
    assert api["VersionDescription"].endswith(f"code abc1234 digest {digests['ApiFunction'][:10]}")


def test_a_model_layer_holding_another_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a build whose model layer holds penguins (e.g. restored from sam build's cache)
    build = make_build(tmp_path / "build", model="penguins")
    before = (build / "template.yaml").read_text()
    # WHEN the release is stamped for diabetes THEN the build is refused, and says how to fix it
    code = stamp.main(["--config-env", "dev", "--model", "diabetes", "--build-dir", str(build)])
    assert code == 2
    assert "make build MODEL=diabetes" in capsys.readouterr().err
    assert (build / "template.yaml").read_text() == before


def test_a_stamped_build_is_not_stamped_again(tmp_path: Path) -> None:
    build = make_build(tmp_path / "build")
    stamp.stamp_build(build, "dev", MODELS / "penguins", revision="abc1234")
    # WHEN stamped again (for prod) THEN refused: its pinned values would pass for template defaults
    with pytest.raises(stamp.StampError, match="fresh `sam build` output"):
        stamp.stamp_build(build, "prod", MODELS / "penguins", revision="abc1234")


def test_the_version_digest_follows_built_content_not_file_times(tmp_path: Path) -> None:
    build = make_build(tmp_path / "build")
    first = stamp.tree_digest(build / "CoreLayer")
    # WHEN a file is touched THEN nothing changed
    os.utime(build / "CoreLayer" / "app.py", (1, 1))
    assert stamp.tree_digest(build / "CoreLayer") == first
    # WHEN a byte changes, or a file moves THEN the digest changes
    (build / "CoreLayer" / "app.py").write_text("# changed\n")
    second = stamp.tree_digest(build / "CoreLayer")
    assert second != first
    (build / "CoreLayer" / "app.py").rename(build / "CoreLayer" / "other.py")
    assert stamp.tree_digest(build / "CoreLayer") not in {first, second}


def test_a_model_change_in_the_built_layer_changes_every_digest(tmp_path: Path) -> None:
    # GIVEN the same build once with penguins and once with diabetes in the model layer
    a = stamp.version_digests(
        stamp.stamp_build(make_build(tmp_path / "a"), "dev", MODELS / "penguins", "x")[1]
    )
    b = stamp.version_digests(
        stamp.stamp_build(make_build(tmp_path / "b", "diabetes"), "dev", MODELS / "diabetes", "x")[1]
    )
    # THEN each function that loads the model gets a new version
    assert all(a[f] != b[f] for f in a)


def test_an_override_of_an_undeclared_parameter_is_refused(tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "Stage=dev MaxRow=5"\n'
    )
    with pytest.raises(stamp.StampError, match="MaxRow"):
        stamp.environment_values(load_template((ROOT / "template.yaml").read_text()), "dev", samconfig)


def test_the_release_command_dispatches_stamp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = make_build(tmp_path / "build")
    args = [
        "stamp",
        "--config-env",
        "dev",
        "--model",
        "penguins",
        "--build-dir",
        str(build),
        "--revision",
        "r1",
    ]
    assert command.main(args) == 0
    out = capsys.readouterr().out
    assert "stamped for dev (Stage=dev): model 1.0.0" in out
    assert "ApiFunction: version digest" in out
