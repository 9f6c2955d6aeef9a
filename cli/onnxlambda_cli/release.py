"""Which version and model each alias serves, and the one-command manual rollback.

    onnxlambda release status   --function onnxlambda-prod-api     (or --config-env prod)
    onnxlambda release rollback --function onnxlambda-prod-api [--alias live] [--to previous|7]
    onnxlambda release params   --config-env prod --model penguins  (what `make deploy` passes)

CodeDeploy rolls back by itself while a deployment runs (an alarm fires or the pre-traffic hook
fails). After it has finished, alarms no longer move the alias: `rollback` is the way back. It
points the alias at an older published version - the code, layers and configuration that
version was published with, so the model comes back with it - and records who moved it from
where in the alias description.

"previous" is the version that served the alias before the current one, read from CodeDeploy's
deployments of this function and alias (SAM makes one per release): the version the latest
succeeded deployment of the current version replaced. When the current version did not come
from a deployment (it was itself a rollback), it is the newest older version CodeDeploy did not
refuse: a version whose deployment failed (golden-set gate, alarm during the canary) stays
published - versions are retained - but never took all traffic, so it is skipped. Without any
history (no deployments yet, or no permission to read them) "previous" is the newest older
published version, and the CLI says so.

Every published version carries its model version, model sha256 and code revision
(template.yaml: ApiFunction Environment and VersionDescription), which `status` reads back.

Uses boto3's Lambda and CodeDeploy APIs (credentials and region from the usual AWS environment),
so it is tested against moto.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (cli/onnxlambda_cli/<this file>)
SAMCONFIG = ROOT / "samconfig.toml"

TRACE_VARIABLES = {
    "model_version": "RELEASE_MODEL_VERSION",
    "model_sha256": "RELEASE_MODEL_SHA256",
    "code_revision": "RELEASE_CODE_REVISION",
}


class ReleaseError(Exception):
    """A request the CLI refuses, with a message meant for the operator."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    description: str
    model_version: str
    model_sha256: str
    code_revision: str
    last_modified: str


@dataclass(frozen=True, slots=True)
class AliasStatus:
    alias: str
    version: VersionInfo
    # A CodeDeploy deployment in progress: {version: weight} of the extra version.
    routing: dict[str, float]


@dataclass(frozen=True, slots=True)
class Rollback:
    function: str
    alias: str
    from_version: str
    to_version: str
    # Older versions passed over because no deployment ever made them serve the alias.
    skipped: tuple[str, ...] = ()


def published_versions(client: Any, function: str) -> list[str]:
    """Published version numbers in ascending order ($LATEST is not a release)."""
    versions: list[str] = []
    for page in client.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        versions += [v["Version"] for v in page["Versions"] if v["Version"] != "$LATEST"]
    return sorted(versions, key=int)


def version_info(client: Any, function: str, version: str) -> VersionInfo:
    config = client.get_function_configuration(FunctionName=function, Qualifier=version)
    env = (config.get("Environment") or {}).get("Variables") or {}
    trace = {field: env.get(var, "unknown") for field, var in TRACE_VARIABLES.items()}
    return VersionInfo(
        version=version,
        description=config.get("Description", ""),
        last_modified=config.get("LastModified", ""),
        **trace,
    )


def status(client: Any, function: str, alias: str | None = None) -> list[AliasStatus]:
    if alias:
        aliases = [client.get_alias(FunctionName=function, Name=alias)]
    else:
        aliases = []
        for page in client.get_paginator("list_aliases").paginate(FunctionName=function):
            aliases += page["Aliases"]
    return [
        AliasStatus(
            alias=a["Name"],
            version=version_info(client, function, a["FunctionVersion"]),
            routing=dict((a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}),
        )
        for a in sorted(aliases, key=lambda a: str(a["Name"]))
    ]


@dataclass(frozen=True, slots=True)
class History:
    """What CodeDeploy's deployments of one function alias say about its versions."""

    served: frozenset[str]  # target or replaced version of a succeeded deployment
    refused: frozenset[str]  # target of a failed or stopped deployment that never went live
    # version -> the version it replaced, from the latest succeeded deployment that made it live
    replaced: Mapping[str, str]


def deployment_history(codedeploy: Any, function: str, alias: str) -> History | None:
    """This alias's CodeDeploy deployments (SAM creates one per release), None when there are none."""
    ids: list[str] = []
    for page in codedeploy.get_paginator("list_deployments").paginate(
        includeOnlyStatuses=["Succeeded", "Failed", "Stopped"]
    ):
        ids += page["deployments"]
    infos = []
    for chunk in itertools.batched(ids, 25, strict=False):  # the API's limit per call
        infos += codedeploy.batch_get_deployments(deploymentIds=list(chunk))["deploymentsInfo"]
    served: set[str] = set()
    failed: set[str] = set()
    replaced: dict[str, str] = {}
    for info in sorted(infos, key=lambda i: str(i.get("createTime") or "")):
        for target in _lambda_targets(info.get("revision") or {}):
            if (
                _function_name(str(target.get("name", ""))) != _function_name(function)
                or target.get("alias") != alias
            ):
                continue
            current, new = str(target.get("currentversion", "")), str(target.get("targetversion", ""))
            if info.get("status") == "Succeeded":
                served |= {v for v in (current, new) if v}
                if current and new and current != new:
                    replaced[new] = current
            elif new:
                failed.add(new)
    if not (served or failed):
        return None
    return History(frozenset(served), frozenset(failed - served), replaced)


def _lambda_targets(revision: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Lambda entries of a deployment's AppSpec (JSON or YAML; key case varies), keys lowercased."""
    import yaml

    content = (revision.get("appSpecContent") or {}).get("content") or (revision.get("string") or {}).get(
        "content"
    )
    if not content:
        return []
    try:
        spec = _lower_keys(yaml.safe_load(content))
    except yaml.YAMLError:
        return []
    entries = [e for r in spec.get("resources") or [] if isinstance(r, dict) for e in r.values()]
    return [
        e.get("properties") or {}
        for e in entries
        if isinstance(e, dict) and str(e.get("type", "")).lower() == "aws::lambda::function"
    ]


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _function_name(name_or_arn: str) -> str:
    """`f`, `arn:...:function:f` and `arn:...:function:f:live` all name function `f`."""
    return name_or_arn.rsplit(":function:", 1)[-1].split(":", 1)[0]


def plan_rollback(
    client: Any, function: str, alias: str = "live", to: str = "previous", history: History | None = None
) -> Rollback:
    """Which version `rollback` would move the alias to; raises ReleaseError when it must refuse.

    With CodeDeploy's `history`, "previous" is the version the serving one replaced, else the
    newest older version that served; never one CodeDeploy refused. Without it, the newest older.
    """
    current = client.get_alias(FunctionName=function, Name=alias)
    weights = (current.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights:
        raise ReleaseError(
            f"alias {alias!r} is mid-deployment (traffic split {weights}): stop the CodeDeploy "
            "deployment instead (`aws deploy stop-deployment --deployment-id ... --auto-rollback-enabled`), "
            "it moves the alias back itself"
        )
    serving = current["FunctionVersion"]
    versions = published_versions(client, function)
    if to == "previous":
        if serving == "$LATEST":
            raise ReleaseError(f"alias {alias!r} points at $LATEST; there is no release to roll back from")
        older = [v for v in versions if int(v) < int(serving)]
        before = history.replaced.get(serving) if history else None
        if before in older:
            return Rollback(
                function, alias, serving, str(before), tuple(v for v in older if int(v) > int(before))
            )
        candidates = [v for v in older if history is None or v not in history.refused]
        if not candidates:
            refused = f"; CodeDeploy refused versions {', '.join(older)}" if older else ""
            raise ReleaseError(
                f"no previous version: alias {alias!r} serves version {serving} and no older version "
                f"of {function} can take over (published: {', '.join(versions) or 'none'}{refused})"
            )
        target = candidates[-1]
        skipped = tuple(v for v in older if int(v) > int(target))
        return Rollback(function, alias, serving, target, skipped)
    if to not in versions:
        raise ReleaseError(
            f"version {to!r} is not a published version of {function} "
            f"(published: {', '.join(versions) or 'none'})"
        )
    if to == serving:
        raise ReleaseError(f"alias {alias!r} already serves version {to}")
    return Rollback(function=function, alias=alias, from_version=serving, to_version=to)


def rollback(
    client: Any, function: str, alias: str = "live", to: str = "previous", history: History | None = None
) -> Rollback:
    plan = plan_rollback(client, function, alias, to, history)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.update_alias(
        FunctionName=function,
        Name=alias,
        FunctionVersion=plan.to_version,
        Description=f"rolled back from version {plan.from_version} at {when} (onnxlambda_cli.release)",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    return plan


# -- deploy parameters and names from samconfig.toml ------------------------------------------


def _samconfig_env(config_env: str, samconfig: Path) -> dict[str, Any]:
    config = tomllib.loads(samconfig.read_text())
    # `dev` is samconfig's [default] table (plain `sam deploy`).
    name = "default" if config_env == "dev" and "dev" not in config else config_env
    if name not in config:
        known = sorted(k for k in config if k != "version")
        raise ReleaseError(f"no [{config_env}] environment in {samconfig.name} (known: {', '.join(known)})")
    table: dict[str, Any] = config[name]
    return table


def _section(table: dict[str, Any], command: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section in ("global", command):
        merged.update((table.get(section) or {}).get("parameters") or {})
    return merged


def function_name(config_env: str, samconfig: Path = SAMCONFIG) -> str:
    """The API function's name in an environment's stack (template.yaml: `${AWS::StackName}-api`)."""
    return f"{_section(_samconfig_env(config_env, samconfig), 'deploy')['stack_name']}-api"


def deploy_region(config_env: str, samconfig: Path = SAMCONFIG) -> str | None:
    region = _section(_samconfig_env(config_env, samconfig), "deploy").get("region")
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


def release_parameters(
    config_env: str, model_dir: Path, revision: str | None = None, samconfig: Path = SAMCONFIG
) -> str:
    """The environment's parameter_overrides plus the release stamp of this model and commit.

    `sam deploy --parameter-overrides` replaces samconfig's list instead of adding to it, so
    `make deploy` passes this whole string.
    """
    base = str(_section(_samconfig_env(config_env, samconfig), "deploy").get("parameter_overrides", ""))
    # Plain JSON: this runs from `make deploy` without the core package on the path.
    manifest = json.loads((model_dir / "manifest.json").read_text())
    stamp = {
        "ModelVersion": str(manifest["version"]),
        "ModelSha256": str(manifest["sha256"]),
        "CodeRevision": revision or code_revision(),
    }
    kept = [p for p in base.split() if p.split("=", 1)[0] not in stamp]
    return " ".join([*kept, *(f"{k}={v}" for k, v in stamp.items())])


def format_status(function: str, rows: Sequence[AliasStatus]) -> str:
    lines = [f"function {function}"]
    for row in rows:
        v = row.version
        lines.append(
            f"  {row.alias} -> version {v.version}: model {v.model_version} sha256 {v.model_sha256} "
            f"code {v.code_revision} (published {v.last_modified})"
        )
        for extra, weight in row.routing.items():
            lines.append(f"    canary in progress: version {extra} takes {weight:.0%} of traffic")
    if not rows:
        lines.append("  no aliases")
    return "\n".join(lines)


def _history(codedeploy: Any, function: str, alias: str, region: str | None) -> History | None:
    try:
        if codedeploy is None:
            import boto3

            codedeploy = boto3.client("codedeploy", region_name=region)
        history = deployment_history(codedeploy, function, alias)
    except Exception as exc:  # no permission, no network: say so and fall back
        print(f"note: CodeDeploy history unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
        history = None
    if history is None:
        print("note: no CodeDeploy history; 'previous' = the newest older published version", file=sys.stderr)
    return history


def main(argv: Sequence[str] | None = None, client: Any = None, codedeploy: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="onnxlambda release", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("status", "show what each alias serves"), ("rollback", "point the alias back")):
        p = sub.add_parser(name, help=helptext)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--function", help="function name or ARN (stack output ApiFunctionName)")
        target.add_argument(
            "--config-env", help="samconfig.toml environment (dev, prod): its stack's function"
        )
        p.add_argument("--alias", default=None if name == "status" else "live")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--region", default=None)
        if name == "rollback":
            p.add_argument("--to", default="previous", help="'previous' (default) or a version number")
    p = sub.add_parser("params", help="parameter overrides for `sam deploy` with the release stamp")
    p.add_argument("--config-env", required=True)
    p.add_argument("--model", default="penguins", help="models/<name> being released")
    args = parser.parse_args(argv)
    try:
        if args.command == "params":
            print(release_parameters(args.config_env, ROOT / "models" / args.model))
            return 0
        function = args.function or function_name(args.config_env)
        region = args.region or (deploy_region(args.config_env) if args.config_env else None)
        if client is None:
            import boto3

            client = boto3.client("lambda", region_name=region)
        if args.command == "status":
            rows = status(client, function, args.alias)
            out = json.dumps([asdict(r) for r in rows], indent=2) if args.json else None
            print(out or format_status(function, rows))
        else:
            history = _history(codedeploy, function, args.alias, region) if args.to == "previous" else None
            done = rollback(client, function, args.alias, args.to, history)
            if args.json:
                print(json.dumps(asdict(done)))
            else:
                moved = f"now serves version {done.to_version} (was {done.from_version})"
                print(f"{done.function}:{done.alias} {moved}")
                if done.skipped:
                    print(f"skipped versions {', '.join(done.skipped)}: not what served {done.alias} before")
                print(format_status(function, status(client, function, args.alias)))
    except ReleaseError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
