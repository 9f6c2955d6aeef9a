"""samconfig.toml and the make targets of a release: build (stamp), deploy (preflight), status, rollback."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from onnxlambda_cli.release import command, environments
from tests.conftest import ROOT


def test_function_name_and_region_come_from_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    # THEN `dev` is the [default] table and the function is named after the stack (template.yaml)
    assert (
        environments.function_name("dev") == config["default"]["global"]["parameters"]["stack_name"] + "-api"
    )
    assert environments.function_name("prod") == "onnxlambda-prod-api"
    assert environments.deploy_region("prod") == config["prod"]["deploy"]["parameters"]["region"]
    assert "FunctionName: !Sub ${AWS::StackName}-api" in (ROOT / "template.yaml").read_text()


def test_unknown_environment_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["status", "--config-env", "staging"]) == 2
    assert "no [staging] environment" in capsys.readouterr().err


def test_code_revision_is_a_commit_marked_dirty_when_the_tree_changed(tmp_path: Path) -> None:
    # GIVEN this repository THEN the revision is a full commit id, maybe with -dirty
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", environments.code_revision())
    # GIVEN a directory that is not a git repository THEN the stamp says so instead of failing
    assert environments.code_revision(tmp_path) == "unset"


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
        (("rollback", "STACK=s", "TO=3"), "onnxlambda release rollback --stack s --to 3"),
        (("status", "ENV=dev"), "onnxlambda release status --config-env dev"),
        (("status", "FUNCTION=f"), "onnxlambda release status --function f"),
    ],
)
def test_make_targets_run_the_release_cli(args: tuple[str, ...], command: str) -> None:
    # GIVEN `make -n` (print, do not run) THEN each target runs the CLI with the documented flags
    [line] = [line for line in make_dry_run(*args).splitlines() if "onnxlambda release" in line]
    assert line.endswith(command)


def test_make_build_names_the_model_inside_the_layer_source_and_stamps_the_build() -> None:
    printed = make_dry_run("build", "ENV=prod", "MODEL=diabetes")
    lines = printed.splitlines()
    # THEN the model is written where `sam build --cached` looks (the layer's ContentUri), before it runs
    select = lines.index('echo "diabetes" > models/.selected')
    [build] = [i for i, line in enumerate(lines) if " build --cached " in line]
    [stamp] = [i for i, line in enumerate(lines) if "onnxlambda release stamp" in line]
    assert select < build < stamp
    assert lines[stamp].endswith(
        "release stamp --config-env prod --model diabetes --build-dir .aws-sam/build"
    )
    # AND the model is not passed as an environment variable the cache would ignore
    assert "MODEL=diabetes" not in lines[build]


def test_make_deploy_checks_the_build_then_deploys_it_with_the_preflight_overrides() -> None:
    printed = re.sub(r"\\\n\s*", " ", make_dry_run("deploy", "ENV=prod"))  # one command, continued
    [line] = [line for line in printed.splitlines() if "release preflight" in line]
    # THEN the preflight's refusal stops the deploy (&&), and sam deploy gets its complete overrides
    preflight = "onnxlambda release preflight --config-env prod --template .aws-sam/build/template.yaml"
    assert re.search(r'overrides="\$\(.*' + re.escape(preflight) + r'\)" && ', line)
    assert "deploy --config-env prod --template-file .aws-sam/build/template.yaml" in line
    assert line.endswith('--parameter-overrides "$overrides"')
    assert "sam deploy --config-env default" in make_dry_run("deploy", "ENV=dev").replace(
        ".venv-sam/bin/", ""
    )
