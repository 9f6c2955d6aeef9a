"""Print the CloudFormation that the SAM transform makes of a template, offline.

Runs with the SAM venv's interpreter (it imports samtranslator and samcli, which live there):

    .venv-sam/bin/python devtools/sam_transform.py template.yaml [Param=value ...] [Logical.Uri=s3://...]
    echo '[["template.yaml"], ["template.yaml", "MaxRows=5"]]' | \
        .venv-sam/bin/python devtools/sam_transform.py --batch

CloudFormation runs this same transform (AWS::Serverless-2016-10-31) at deploy time, after
`sam deploy` has uploaded each CodeUri/ContentUri and replaced it with an S3 URI that changes
with the content. Here local paths become `s3://artifacts/<path>`, or the URI given as
`<LogicalId>.Uri=s3://...` (to stand in for changed content). Tests use it to check what SAM
generates from template.yaml - the alias, the CodeDeploy deployment group, the hook wiring,
which version each alarm watches - and when a deployment publishes a new version.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

_URI_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",  # sam package uploads it too
}


class _NoManagedPolicies:
    """The transform asks for AWS managed policy ARNs only for policies named by bare name."""

    def load(self) -> dict[str, str]:
        return {}


def transform(template_path: Path, parameters: dict[str, str], uris: dict[str, str]) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse
    from samtranslator.translator.transform import transform as sam_transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the transform insists on a region
    template = yaml_parse(template_path.read_text())
    for logical_id, resource in template.get("Resources", {}).items():
        prop = _URI_PROPERTY.get(resource.get("Type"))
        local = (resource.get("Properties") or {}).get(prop) if prop else None
        if isinstance(local, str) and not local.startswith("s3://"):
            resource["Properties"][prop] = uris.get(logical_id, f"s3://artifacts/{local}")
    values = {k: v["Default"] for k, v in (template.get("Parameters") or {}).items() if "Default" in v}
    values.update(parameters)
    result: dict[str, Any] = sam_transform(template, values, _NoManagedPolicies())
    return result


def transform_args(args: list[str]) -> dict[str, Any]:
    """`template.yaml Param=value Logical.Uri=s3://...` -> the transformed template."""
    pairs = [arg.split("=", 1) for arg in args[1:]]
    uris = {k.removesuffix(".Uri"): v for k, v in pairs if k.endswith(".Uri")}
    params = {k: v for k, v in pairs if not k.endswith(".Uri")}
    return transform(Path(args[0]), params, uris)


if __name__ == "__main__":
    if sys.argv[1:] == ["--batch"]:
        # Many variants in one process: importing samtranslator costs seconds, a transform does not.
        print(json.dumps([transform_args(args) for args in json.load(sys.stdin)]))
    else:
        print(json.dumps(transform_args(sys.argv[1:]), indent=1, sort_keys=True))
