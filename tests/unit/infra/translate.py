"""Run SAM's own transform offline (devtools/sam_transform.py in the SAM venv) over many templates at once.

CloudFormation runs the same transform at deploy time. One SAM process for many variants:
importing samtranslator costs seconds, a transform does not.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from onnxlambda_cli.cloudformation import load_template
from tests.conftest import ROOT

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"


def translate(variants: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """Each variant is `[template path, Param=value..., Logical.Uri=s3://...]`; returns each's Resources."""
    out = subprocess.run(
        [str(SAM_PYTHON), "devtools/sam_transform.py", "--batch"],
        cwd=ROOT,
        input=json.dumps([list(v) for v in variants]),
        capture_output=True,
        text=True,
        check=True,
    )
    return [t["Resources"] for t in json.loads(out.stdout)]


def source_template() -> dict[str, Any]:
    return load_template((ROOT / "template.yaml").read_text())


def samconfig_environments() -> list[str]:
    """Every environment samconfig.toml deploys (`dev` is its [default] table)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    names = [name for name, table in config.items() if isinstance(table, dict) and "deploy" in table]
    return ["dev" if name == "default" else name for name in names]


def of_type(resources: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def versions(resources: Mapping[str, Any]) -> dict[str, str]:
    """function logical id -> the logical id of the version this template publishes for it."""
    found: dict[str, str] = {}
    for name, resource in of_type(resources, "AWS::Lambda::Version").items():
        function = resource["Properties"]["FunctionName"]["Ref"]
        assert function not in found, f"two versions of {function}"
        found[function] = name
    return found


def write(template: Mapping[str, Any], directory: Path, name: str) -> str:
    """A template dict as a file the transform can read (JSON is YAML)."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps(template))
    return str(path)
