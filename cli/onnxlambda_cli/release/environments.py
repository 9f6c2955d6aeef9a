"""What a samconfig.toml environment deploys (its stack, API function, region and `sam deploy`
settings), where the repository is, and which commit it holds (the code revision a build is
stamped with).
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

from onnxlambda_cli.release import ReleaseError

ROOT = Path(__file__).resolve().parents[3]  # the repository (cli/onnxlambda_cli/release/<this file>)
SAMCONFIG = ROOT / "samconfig.toml"


def _samconfig_env(config_env: str, samconfig: Path) -> dict[str, Any]:
    config = tomllib.loads(samconfig.read_text())
    # `dev` is samconfig's [default] table (plain `sam deploy`).
    name = "default" if config_env == "dev" and "dev" not in config else config_env
    if name not in config:
        known = sorted(k for k in config if k != "version")
        raise ReleaseError(f"no [{config_env}] environment in {samconfig.name} (known: {', '.join(known)})")
    table: dict[str, Any] = config[name]
    return table


def deploy_settings(config_env: str, samconfig: Path = SAMCONFIG) -> dict[str, Any]:
    """The `sam deploy` settings of an environment (global parameters, then deploy parameters)."""
    table = _samconfig_env(config_env, samconfig)
    merged: dict[str, Any] = {}
    for section in ("global", "deploy"):
        merged.update((table.get(section) or {}).get("parameters") or {})
    return merged


def stack_name(config_env: str, samconfig: Path = SAMCONFIG) -> str:
    return str(deploy_settings(config_env, samconfig)["stack_name"])


def function_name(config_env: str, samconfig: Path = SAMCONFIG) -> str:
    """The API function's name in an environment's stack (template.yaml: `${AWS::StackName}-api`)."""
    return f"{stack_name(config_env, samconfig)}-api"


def deploy_region(config_env: str, samconfig: Path = SAMCONFIG) -> str | None:
    region = deploy_settings(config_env, samconfig).get("region")
    return str(region) if region else None


def code_revision(repo: Path = ROOT) -> str:
    """The git commit being released, `-dirty` when the working tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unset"
    return f"{head}-dirty" if dirty else head


__all__ = [
    "ROOT",
    "SAMCONFIG",
    "code_revision",
    "deploy_region",
    "deploy_settings",
    "function_name",
    "stack_name",
]
