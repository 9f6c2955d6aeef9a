"""Stamp a `sam build` output so what is deployed is exactly what was built (`make build` runs this).

    onnxlambda release stamp --config-env prod --model penguins [--build-dir .aws-sam/build]

It rewrites `<build-dir>/template.yaml`:

1. **The release stamp** (model version, model sha256, git revision) goes into the template's
   `Mappings.Release.Build`, after checking that the built model layer holds that model. Template
   text, not parameters: `sam deploy` resends the previous value of every parameter it is not given
   (aws-sam-cli commands/deploy/deploy_context.py merge_parameters), so a parameter stamp goes
   stale on a plain `sam deploy`.
2. **Settings are pinned.** Every parameter that reaches a published function version (read from
   the template: references in Globals.Function and in each aliased function, through Fn::If
   conditions too) gets the environment's value as its only AllowedValue. A deploy with any other
   value - a one-off override, a previous value resent by `sam deploy`, a build for another
   environment - is refused by CloudFormation instead of silently diverging from the digest.
3. **A version digest per aliased function** in `AutoPublishCodeSha256`: sha256 over the
   function's properties, the Globals, the pinned values it uses, its built code, the built
   content of each of its layers and the stamp. SAM uses this value instead of its own hash
   (samtranslator/translator/logical_id_generator.py: `if self.data_hash: return
   self.data_hash[:length]`) and resolves only a bare parameter Ref in it, never Fn::Sub
   (sam_resources.py: "AutoPublishCodeSha256 must be a string"), so it is computed here, at build.
   Any change of code, model, core layer or setting therefore publishes a new version of every
   function it affects - the API, batch and monitor functions move to a new model together.
   The version description names model, commit and the digest's first 10 characters (the
   version's logical id ends with the same 10).
4. **The StampedBuild rule** is rewritten to accept only the Stage this build was stamped for.

Plain JSON/YAML: this runs from `make build` without the SAM venv.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from onnxlambda_cli.cloudformation import load_template, references
from onnxlambda_cli.release import ReleaseError
from onnxlambda_cli.release.environments import ROOT, SAMCONFIG, code_revision, deploy_settings

RELEASE_MAPPING = ("Release", "Build")
STAMP_RULE = "StampedBuild"
UNSTAMPED = "unstamped"
# Function properties that never change what a published version does: the alias, CodeDeploy,
# concurrency (function- or alias-level, applied without a new version) and event sources.
NOT_IN_VERSION = frozenset(
    {
        "AutoPublishAlias",
        "AutoPublishCodeSha256",
        "DeploymentPreference",
        "Events",
        "ProvisionedConcurrencyConfig",
        "ReservedConcurrentExecutions",
        "VersionDescription",  # written from the stamp and the digest below
    }
)


class StampError(Exception):
    """The build cannot be stamped (wrong model in the layer, already stamped, unknown environment)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    model_version: str
    model_sha256: str
    code_revision: str
    stage: str


# -- what reaches a version -------------------------------------------------------------------


def aliased_functions(template: Mapping[str, Any]) -> list[str]:
    """Functions that publish versions behind an alias (AutoPublishAlias)."""
    return sorted(
        name
        for name, r in template["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function"
        and (r.get("Properties") or {}).get("AutoPublishAlias")
    )


def _version_inputs(template: Mapping[str, Any], function: str) -> dict[str, Any]:
    """The template text a version of `function` is made from (Globals and its own properties)."""
    props = template["Resources"][function].get("Properties") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    return {
        "globals": {k: v for k, v in globals_.items() if k not in NOT_IN_VERSION},
        "function": {k: v for k, v in props.items() if k not in NOT_IN_VERSION},
    }


def version_parameters(template: Mapping[str, Any]) -> dict[str, list[str]]:
    """For each aliased function, the template parameters whose value reaches its published version."""
    parameters = set(template.get("Parameters") or {})
    conditions = template.get("Conditions") or {}
    return {
        function: sorted(set(references(_version_inputs(template, function), conditions)) & parameters)
        for function in aliased_functions(template)
    }


def layers_of(template: Mapping[str, Any], function: str) -> list[str]:
    """Logical ids of the layers in the template a function uses (its own list, else the Globals')."""
    props = template["Resources"][function].get("Properties") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    layers = props.get("Layers") or globals_.get("Layers") or []
    return [ref["Ref"] for ref in layers if isinstance(ref, dict) and ref.get("Ref") in template["Resources"]]


# -- values and artifacts ---------------------------------------------------------------------


def environment_values(template: Mapping[str, Any], config_env: str, samconfig: Path) -> dict[str, str]:
    """Every parameter's value for a samconfig environment: its overrides over the template defaults."""
    values = {k: str(v["Default"]) for k, v in (template.get("Parameters") or {}).items() if "Default" in v}
    overrides = deploy_settings(config_env, samconfig).get("parameter_overrides", "")
    for pair in shlex.split(str(overrides)):
        key, _, value = pair.partition("=")
        if key not in values and key not in (template.get("Parameters") or {}):
            raise StampError(f"samconfig [{config_env}] overrides {key}, a parameter the template lacks")
        values[key] = value
    for name, value in values.items():
        _check(name, value, (template.get("Parameters") or {}).get(name) or {})
    return values


def _check(name: str, value: str, parameter: Mapping[str, Any]) -> None:
    """The checks CloudFormation would make of a parameter value, made at build instead."""
    allowed = [str(v) for v in parameter.get("AllowedValues") or []]
    problem = ""
    if allowed and value not in allowed:
        problem = f"is not one of {allowed}"
    elif "AllowedPattern" in parameter and not re.fullmatch(str(parameter["AllowedPattern"]), value):
        problem = f"does not match {parameter['AllowedPattern']}"
    elif parameter.get("Type") == "Number":
        number = float(value)
        low, high = float(parameter.get("MinValue", number)), float(parameter.get("MaxValue", number))
        if not low <= number <= high:
            problem = f"is outside [{low:g}, {high:g}]"
    if problem:
        raise StampError(f"parameter {name}={value!r} {problem}")


def tree_digest(path: Path) -> str:
    """sha256 over every file under `path` (relative path and bytes), independent of mtimes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise StampError(f"nothing built under {path}")
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def artifact_digests(template: Mapping[str, Any], build_dir: Path) -> dict[str, str]:
    """Digest of each built function's code and each built layer, by logical id."""
    found = {}
    for name, resource in template["Resources"].items():
        uri_key = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}.get(
            resource.get("Type", "")
        )
        uri = (resource.get("Properties") or {}).get(uri_key) if uri_key else None
        if isinstance(uri, str) and (build_dir / uri).is_dir():
            found[name] = tree_digest(build_dir / uri)
    return found


def built_model(template: Mapping[str, Any], build_dir: Path) -> dict[str, Any]:
    """The manifest in the built model layer (the layer whose content has model/manifest.json)."""
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            manifest = build_dir / str((resource.get("Properties") or {}).get("ContentUri")) / "model"
            if (manifest / "manifest.json").is_file():
                loaded: dict[str, Any] = json.loads((manifest / "manifest.json").read_text())
                return loaded
    raise StampError(f"no built model layer (model/manifest.json) under {build_dir}")


# -- the stamp --------------------------------------------------------------------------------


def version_digest(
    template: Mapping[str, Any],
    function: str,
    values: Mapping[str, str],
    artifacts: Mapping[str, str],
    stamp: Stamp,
) -> str:
    """What decides a new version of `function`: its template text, settings, code, layers, stamp."""
    used = version_parameters(template)[function]
    inputs = _version_inputs(template, function)
    resources = template["Resources"]
    # A resource the function names by Ref/GetAtt: replacing it changes the name or ARN its
    # version was published with (e.g. ONNXLAMBDA_CAPTURE_BUCKET), so its template text counts too.
    named = sorted(set(references(inputs, template.get("Conditions") or {})) & set(resources) - {function})
    material = {
        **inputs,
        "resources": {
            name: {
                "Type": resources[name]["Type"],
                "Properties": _without_stamp(resources[name].get("Properties")),
            }
            for name in named
        },
        "parameters": {name: values[name] for name in used},
        "code": artifacts[function],
        "layers": {layer: artifacts[layer] for layer in layers_of(template, function)},
        "stamp": asdict(stamp),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _without_stamp(properties: Any) -> Any:
    """Properties as in template.yaml: without what this stamp adds to aliased functions."""
    if not isinstance(properties, dict):
        return properties
    return {k: v for k, v in properties.items() if k not in {"AutoPublishCodeSha256", "VersionDescription"}}


def _require_unstamped(template: Mapping[str, Any]) -> None:
    rule = ((template.get("Rules") or {}).get(STAMP_RULE) or {}).get("Assertions") or [{}]
    if rule[0].get("Assert") != {"Fn::Equals": [{"Ref": "Stage"}, UNSTAMPED]}:
        raise StampError(f"the template has no unstamped {STAMP_RULE} rule: stamp a fresh `sam build` output")


def stamp_template(
    template: Mapping[str, Any], stamp: Stamp, values: Mapping[str, str], artifacts: Mapping[str, str]
) -> dict[str, Any]:
    """The template with the stamp, pinned settings and version digests (the input is not changed)."""
    _require_unstamped(template)
    missing = [name for name in aliased_functions(template) if name not in artifacts]
    if missing:
        raise StampError(f"no built code for {', '.join(missing)}")
    out = copy.deepcopy(dict(template))
    out["Mappings"][RELEASE_MAPPING[0]][RELEASE_MAPPING[1]] = {
        "ModelVersion": stamp.model_version,
        "ModelSha256": stamp.model_sha256,
        "CodeRevision": stamp.code_revision,
    }
    out["Rules"][STAMP_RULE]["Assertions"] = [
        {
            "Assert": {"Fn::Equals": [{"Ref": "Stage"}, stamp.stage]},
            "AssertDescription": f"This build was stamped for Stage={stamp.stage} (`make build ENV=...`); "
            "deploy it only there.",
        }
    ]
    for name in sorted({p for used in version_parameters(template).values() for p in used}):
        parameter = out["Parameters"][name]
        parameter["Default"] = values[name]
        parameter["AllowedValues"] = [values[name]]  # anything else is refused by CloudFormation
    for function in aliased_functions(template):
        digest = version_digest(template, function, values, artifacts, stamp)
        props = out["Resources"][function]["Properties"]
        props["AutoPublishCodeSha256"] = digest
        # What `onnxlambda release status|preflight` read back from a published version.
        props["VersionDescription"] = (
            f"model {stamp.model_version} sha256 {stamp.model_sha256} code {stamp.code_revision} "
            f"digest {digest[:10]}"
        )
    return out


def stamp_build(
    build_dir: Path,
    config_env: str,
    model_dir: Path,
    revision: str | None = None,
    samconfig: Path | None = None,
) -> tuple[Stamp, dict[str, Any]]:
    """Stamp `<build_dir>/template.yaml` in place for an environment and the model it must hold."""
    path = build_dir / "template.yaml"
    template = load_template(path.read_text())
    _require_unstamped(template)
    wanted = json.loads((model_dir / "manifest.json").read_text())
    built = built_model(template, build_dir)
    if built.get("sha256") != wanted["sha256"]:
        raise StampError(
            f"the built model layer holds {built.get('name')} {built.get('version')} "
            f"(sha256 {built.get('sha256')}), not {model_dir.name} {wanted['version']} "
            f"(sha256 {wanted['sha256']}): rebuild with `make build MODEL={model_dir.name}`"
        )
    values = environment_values(template, config_env, samconfig or SAMCONFIG)
    stamp = Stamp(
        model_version=str(wanted["version"]),
        model_sha256=str(wanted["sha256"]),
        code_revision=revision or code_revision(),
        stage=values.get("Stage", UNSTAMPED),
    )
    stamped = stamp_template(template, stamp, values, artifact_digests(template, build_dir))
    path.write_text(yaml.safe_dump(stamped, sort_keys=False, width=1000))
    return stamp, stamped


def pinned(template: Mapping[str, Any]) -> dict[str, str]:
    """The parameters a stamped template pins, with their values."""
    return {
        name: str(p["AllowedValues"][0])
        for name, p in (template.get("Parameters") or {}).items()
        if len(p.get("AllowedValues") or []) == 1 and "Default" in p
    }


def version_digests(template: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(template["Resources"][name]["Properties"].get("AutoPublishCodeSha256", ""))
        for name in aliased_functions(template)
    }


def summary(stamp: Stamp, template: Mapping[str, Any], config_env: str) -> Iterable[str]:
    yield (
        f"stamped for {config_env} (Stage={stamp.stage}): model {stamp.model_version} "
        f"sha256 {stamp.model_sha256} code {stamp.code_revision}"
    )
    yield "pinned: " + " ".join(f"{k}={v}" for k, v in pinned(template).items())
    for name, digest in version_digests(template).items():
        yield f"{name}: version digest {digest[:10]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onnxlambda release stamp", description=__doc__.split("\n")[0])
    parser.add_argument("--config-env", required=True, help="samconfig.toml environment (dev, prod)")
    parser.add_argument("--model", required=True, help="models/<name> the model layer must hold")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--revision", default=os.environ.get("CODE_REVISION"), help="default: git HEAD")
    args = parser.parse_args(argv)
    try:
        model_dir = ROOT / "models" / args.model
        stamp, stamped = stamp_build(args.build_dir, args.config_env, model_dir, args.revision)
    except (StampError, ReleaseError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary(stamp, stamped, args.config_env)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
