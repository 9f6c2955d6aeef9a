"""`make deploy` parameters: each environment's overrides plus the release stamp of model and commit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from onnxlambda_cli import release
from tests.conftest import MODELS, ROOT


def overrides(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())


@pytest.mark.parametrize(("env", "deployment"), [("dev", "AllAtOnce"), ("prod", "Canary10Percent5Minutes")])
def test_params_keep_the_environment_and_add_the_model_stamp(env: str, deployment: str) -> None:
    # GIVEN samconfig.toml's environment and the penguins manifest
    manifest = json.loads((MODELS / "penguins" / "manifest.json").read_text())
    # WHEN the deploy parameters are computed for a given revision
    params = overrides(release.release_parameters(env, MODELS / "penguins", revision="abc1234"))
    # THEN the environment's own overrides stay and the release stamp names model and code
    assert params["Stage"] == env
    assert params["DeploymentType"] == deployment
    assert params["ModelVersion"] == manifest["version"]
    assert params["ModelSha256"] == manifest["sha256"]
    assert params["CodeRevision"] == "abc1234"


def test_params_follow_the_model_being_released() -> None:
    # WHEN the diabetes model is released THEN its sha256 is stamped, not the default model's
    params = overrides(release.release_parameters("dev", MODELS / "diabetes", revision="abc1234"))
    assert params["ModelSha256"] == json.loads((MODELS / "diabetes" / "manifest.json").read_text())["sha256"]


def test_stamp_values_satisfy_the_template_parameter_patterns() -> None:
    # GIVEN the AllowedPattern of each stamp parameter in template.yaml
    template = (ROOT / "template.yaml").read_text()
    patterns = dict(
        re.findall(
            r"\n  (ModelVersion|ModelSha256|CodeRevision):\n(?:    .*\n)*?    AllowedPattern: (.*)\n",
            template,
        )
    )
    assert set(patterns) == {"ModelVersion", "ModelSha256", "CodeRevision"}
    # WHEN the stamp is computed from the real git revision
    params = overrides(release.release_parameters("prod", MODELS / "penguins"))
    # THEN CloudFormation would accept every value
    for name, pattern in patterns.items():
        assert re.fullmatch(pattern.replace("\\\\", "\\"), params[name]), (name, params[name], pattern)


def test_function_name_and_region_come_from_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    # THEN `dev` is the [default] table and the function is named after the stack (template.yaml)
    assert release.function_name("dev") == config["default"]["global"]["parameters"]["stack_name"] + "-api"
    assert release.function_name("prod") == "onnxlambda-prod-api"
    assert release.deploy_region("prod") == config["prod"]["deploy"]["parameters"]["region"]
    assert "FunctionName: !Sub ${AWS::StackName}-api" in (ROOT / "template.yaml").read_text()


def test_unknown_environment_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert release.main(["params", "--config-env", "staging"]) == 2
    assert "no [staging] environment" in capsys.readouterr().err


def test_code_revision_is_a_commit_marked_dirty_when_the_tree_changed(tmp_path: Path) -> None:
    # GIVEN this repository THEN the revision is a full commit id, maybe with -dirty
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", release.code_revision())
    # GIVEN a directory that is not a git repository THEN the stamp says so instead of failing
    assert release.code_revision(tmp_path) == "unset"


def make_dry_run(*args: str) -> str:
    """What `make -n` would run (printed, not run), independent of any make this runs under."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("rollback", "ENV=prod"), "onnxlambda release rollback --config-env prod --to previous"),
        (("rollback", "ENV=prod", "TO=3"), "onnxlambda release rollback --config-env prod --to 3"),
        (("rollback", "FUNCTION=f", "TO=3"), "onnxlambda release rollback --function f --to 3"),
        (("status", "ENV=dev"), "onnxlambda release status --config-env dev"),
        (("status", "FUNCTION=f"), "onnxlambda release status --function f"),
    ],
)
def test_make_targets_run_the_release_cli(args: tuple[str, ...], command: str) -> None:
    # GIVEN `make -n` (print, do not run) THEN each target runs the CLI with the documented flags
    [line] = [line for line in make_dry_run(*args).splitlines() if "onnxlambda release" in line]
    assert line.endswith(command)


def test_make_deploy_passes_the_stamped_parameters_to_the_right_config_env() -> None:
    printed = subprocess.run(
        ["make", "-n", "deploy", "ENV=dev", "MODEL=diabetes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sam deploy --config-env default" in printed
    assert "onnxlambda release params --config-env dev --model diabetes" in printed
