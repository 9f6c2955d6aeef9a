"""Which version and model each alias serves, the one-command manual rollback, and the deploy preflight.

    onnxlambda release status    --config-env prod   (or --function onnxlambda-prod-api)
    onnxlambda release rollback  --config-env prod   [--to previous|7]   (or --stack <name>)
    onnxlambda release stamp     --config-env prod --model penguins   (`make build`: onnxlambda_cli.stamp)
    onnxlambda release preflight --config-env prod   (`make deploy`, before `sam deploy`)

CodeDeploy rolls back by itself while a deployment runs (an alarm fires or the pre-traffic hook
fails). After it has finished, alarms no longer move the alias: `rollback` is the way back. It
points the alias at an older published version - the code, layers and configuration that
version was published with, so the model comes back with it - records who moved it from where
in the alias description, and marks the version it moved away from as withdrawn (a function tag).

Everything is scoped to one stack: its outputs name the function, the version CloudFormation
recorded as the alias's, and the CodeDeploy application and deployment group.

- `rollback` refuses while a deployment of the group is Created, Queued, InProgress, Baking or
  Ready: CodeDeploy would still shift traffic and overwrite the manual move. A deployment is
  InProgress during the pre-traffic hook, when the alias has no traffic split yet.
- "previous" is the version the serving one replaced, from this deployment group's finished
  deployments, with versions read from CodeDeploy's deployment target API (not AppSpec text).
  CodeDeploy's own rollback deployments are not releases and are skipped; a version whose
  deployment failed or was stopped never took all traffic and is never chosen. Without history,
  "previous" is the newest older published version, and the CLI says so.
- After a manual rollback CloudFormation still records the withdrawn version as the alias's (the
  move happened outside it). `preflight` keeps the next deploy from putting it back: it refuses a
  build that is the withdrawn release, and while live differs from the stack's record it allows
  only a redeploy of the release live serves, shifted AllAtOnce (docs/releasing.md).

Uses boto3's Lambda, CodeDeploy and CloudFormation APIs (credentials and region from the usual AWS
environment), so it is tested against moto (botocore Stubber for CodeDeploy's target API, which
moto does not implement).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (cli/onnxlambda_cli/<this file>)
SAMCONFIG = ROOT / "samconfig.toml"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"

TRACE_VARIABLES = {
    "model_version": "ONNXLAMBDA_RELEASE_MODEL_VERSION",
    "model_sha256": "ONNXLAMBDA_RELEASE_MODEL_SHA256",
    "code_revision": "ONNXLAMBDA_RELEASE_CODE_REVISION",
}
WITHDRAWN_TAG = "onnxlambda:withdrawn"  # versions a manual rollback moved `live` away from
# CodeDeploy DeploymentStatus values of a deployment that may still move the alias, and of a
# finished one (codedeploy API reference, DeploymentStatus).
ACTIVE_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")
FINISHED_STATUSES = ("Succeeded", "Failed", "Stopped")
# DeploymentInfo.creator of deployments that only undo another one: not releases.
ROLLBACK_CREATORS = frozenset({"codeDeployRollback", "CloudFormationRollback"})


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

    @property
    def digest(self) -> str:
        """The version digest `make build` stamped into its description ("" for older versions)."""
        words = self.description.split()
        return words[words.index("digest") + 1] if "digest" in words[:-1] else ""


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


@dataclass(frozen=True, slots=True)
class Stack:
    """What a stack's outputs say about its release machinery (template.yaml Outputs)."""

    name: str
    function: str
    recorded_version: str  # the version CloudFormation believes `live` serves
    application: str
    deployment_group: str


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


# -- the stack and its CodeDeploy deployments -------------------------------------------------


def stack(cloudformation: Any, name: str) -> Stack | None:
    """The stack's release outputs; None when the stack does not exist (a first deploy)."""
    try:
        [described] = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except Exception as exc:  # botocore ClientError "Stack with id ... does not exist"
        if "does not exist" in str(exc):
            return None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}
    wanted = ("ApiFunctionName", "ApiFunctionVersion", "DeploymentApplication", "ApiDeploymentGroup")
    missing = [key for key in wanted if key not in outputs]
    if missing:
        raise ReleaseError(
            f"stack {name} has no output {', '.join(missing)}: it was deployed from an older template; "
            "deploy once with `make deploy` (nothing to roll back to from here)"
        )
    return Stack(
        name=name,
        function=outputs["ApiFunctionName"],
        recorded_version=_version_number(outputs["ApiFunctionVersion"]),
        application=outputs["DeploymentApplication"],
        deployment_group=outputs["ApiDeploymentGroup"],
    )


def _version_number(version_or_arn: str) -> str:
    """`7` and `arn:aws:lambda:...:function:f:7` both name version 7."""
    return str(version_or_arn).rsplit(":", 1)[-1]


def _function_name(name_or_arn: str) -> str:
    """`f`, `arn:...:function:f` and `arn:...:function:f:live` all name function `f`."""
    return name_or_arn.rsplit(":function:", 1)[-1].split(":", 1)[0]


def _deployments(codedeploy: Any, where: Stack, statuses: Sequence[str]) -> list[str]:
    """This stack's deployment group only: ListDeployments needs the application AND the group."""
    ids: list[str] = []
    pages = codedeploy.get_paginator("list_deployments").paginate(
        applicationName=where.application,
        deploymentGroupName=where.deployment_group,
        includeOnlyStatuses=list(statuses),
    )
    for page in pages:
        ids += page["deployments"]
    return ids


def active_deployments(codedeploy: Any, where: Stack) -> list[str]:
    """Deployments of the stack's group that may still move the alias (also during the hook)."""
    return _deployments(codedeploy, where, ACTIVE_STATUSES)


@dataclass(frozen=True, slots=True)
class History:
    """What CodeDeploy's finished deployments of one function alias say about its versions."""

    served: frozenset[str]  # target or replaced version of a succeeded deployment
    refused: frozenset[str]  # target of a failed or stopped deployment that never went live
    # version -> the version it replaced, from the latest succeeded deployment that made it live
    replaced: Mapping[str, str] = field(default_factory=dict)


def lambda_targets(codedeploy: Any, deployment_id: str) -> Iterator[dict[str, Any]]:
    """lambdaFunctionInfo of each target (ListDeploymentTargets, then BatchGetDeploymentTargets)."""
    target_ids: list[str] = []
    for page in codedeploy.get_paginator("list_deployment_targets").paginate(deploymentId=deployment_id):
        target_ids += page.get("targetIds") or []
    for chunk in itertools.batched(target_ids, 25, strict=False):  # the API's limit per call
        answer = codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=list(chunk))
        for target in answer.get("deploymentTargets") or []:
            info = (target.get("lambdaTarget") or {}).get("lambdaFunctionInfo")
            if info:
                yield info


def deployment_history(codedeploy: Any, where: Stack, alias: str = "live") -> History | None:
    """The group's finished deployments of `alias` (SAM makes one per release), None when there are none."""
    ids = _deployments(codedeploy, where, FINISHED_STATUSES)
    infos = []
    for chunk in itertools.batched(ids, 25, strict=False):  # BatchGetDeployments returns 25 at most
        infos += codedeploy.batch_get_deployments(deploymentIds=list(chunk))["deploymentsInfo"]
    served: set[str] = set()
    failed: set[str] = set()
    replaced: dict[str, str] = {}
    for info in sorted(infos, key=lambda i: str(i.get("createTime") or "")):
        undoes = (info.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId")
        if info.get("creator") in ROLLBACK_CREATORS or undoes:
            continue  # CodeDeploy moving traffic back: its target is the old version, not a release
        for target in lambda_targets(codedeploy, info["deploymentId"]):
            if (
                _function_name(str(target.get("functionName", ""))) != _function_name(where.function)
                or target.get("functionAlias") != alias
            ):
                continue
            current = _version_number(str(target.get("currentVersion") or ""))
            new = _version_number(str(target.get("targetVersion") or ""))
            if info.get("status") == "Succeeded":
                served |= {v for v in (current, new) if v}
                if current and new and current != new:
                    replaced[new] = current
            elif new:
                failed.add(new)
    if not (served or failed):
        return None
    return History(frozenset(served), frozenset(failed - served), replaced)


# -- rollback ---------------------------------------------------------------------------------


def plan_rollback(
    client: Any,
    function: str,
    alias: str = "live",
    to: str = "previous",
    *,
    history: History | None = None,
    active: Sequence[str] = (),
) -> Rollback:
    """Which version `rollback` would move the alias to; raises ReleaseError when it must refuse.

    With CodeDeploy's `history`, "previous" is the version the serving one replaced, else the
    newest older version that served; never one CodeDeploy refused. Without it, the newest older.
    """
    if active:
        raise ReleaseError(
            f"CodeDeploy deployment {', '.join(active)} of this stack is not finished: it would still "
            f"shift {alias!r} and undo a manual move. Stop it instead (`aws deploy stop-deployment "
            "--deployment-id ... --auto-rollback-enabled`, CodeDeploy then moves the alias back "
            "itself) or wait for it to finish"
        )
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


def withdrawn_versions(client: Any, function: str) -> list[str]:
    arn = client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    return str(client.list_tags(Resource=arn).get("Tags", {}).get(WITHDRAWN_TAG, "")).split()


def rollback(
    client: Any,
    function: str,
    alias: str = "live",
    to: str = "previous",
    *,
    history: History | None = None,
    active: Sequence[str] = (),
) -> Rollback:
    plan = plan_rollback(client, function, alias, to, history=history, active=active)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.update_alias(
        FunctionName=function,
        Name=alias,
        FunctionVersion=plan.to_version,
        Description=f"rolled back from version {plan.from_version} at {when} (onnxlambda_cli.release)",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    # Outside CloudFormation and CodeDeploy, so recorded where `preflight` reads it. A tag value
    # holds 256 characters: the newest withdrawn versions are kept.
    withdrawn = [v for v in withdrawn_versions(client, function) if v != plan.from_version]
    withdrawn.append(plan.from_version)
    while len(" ".join(withdrawn)) > 256:
        withdrawn.pop(0)
    arn = client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    client.tag_resource(Resource=arn, Tags={WITHDRAWN_TAG: " ".join(withdrawn)})
    return plan


# -- the deploy preflight ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preflight:
    # True: live was rolled back by hand and this build is the release live serves; deploying it
    # AllAtOnce makes CloudFormation's record match live again.
    resync: bool
    notes: tuple[str, ...] = ()


def preflight(
    client: Any, codedeploy: Any, cloudformation: Any, stack_name: str, built: Mapping[str, Any]
) -> Preflight:
    """Whether the stamped build `built` may be deployed to `stack_name` now (ReleaseError if not)."""
    from onnxlambda_cli import stamp as stamping

    where = stack(cloudformation, stack_name)
    if where is None:
        return Preflight(False, (f"stack {stack_name} does not exist yet: this deploy creates it",))
    active = active_deployments(codedeploy, where)
    if active:
        raise ReleaseError(f"CodeDeploy deployment {', '.join(active)} of {stack_name} is not finished")
    digest = stamping.version_digests(built).get("ApiFunction", "")[:10]
    build = built["Mappings"]["Release"]["Build"]
    for version in withdrawn_versions(client, where.function):
        if digest and version_info(client, where.function, version).digest == digest:
            raise ReleaseError(
                f"this build is version {version} of {where.function} (digest {digest}), which a manual "
                "rollback withdrew: change what was wrong and build again"
            )
    live = client.get_alias(FunctionName=where.function, Name="live")["FunctionVersion"]
    if live == where.recorded_version:
        return Preflight(False)
    serving = version_info(client, where.function, live)
    if (serving.model_sha256, serving.code_revision) != (build["ModelSha256"], build["CodeRevision"]):
        raise ReleaseError(
            f"live serves version {live} (rolled back by hand) but CloudFormation records version "
            f"{where.recorded_version}; a deployment now would start its traffic shift from the version "
            "CloudFormation records (CodeDeploy shifts from the AppSpec's CurrentVersion, which "
            "CloudFormation writes). First redeploy what live serves - code "
            f"{serving.code_revision}, model {serving.model_version} (sha256 {serving.model_sha256}) - "
            "with `make deploy`; it is shifted AllAtOnce and makes the record match live. "
            "See docs/releasing.md"
        )
    return Preflight(
        True,
        (
            f"live was rolled back by hand to version {live}; this build is that release: deploying it "
            "AllAtOnce so CloudFormation's record matches live again",
        ),
    )


def deploy_overrides(config_env: str, resync: bool, samconfig: Path = SAMCONFIG) -> str:
    """`sam deploy --parameter-overrides` value: the environment's own, AllAtOnce when re-syncing.

    `--parameter-overrides` replaces samconfig's list instead of adding to it, so it is complete.
    """
    pairs = shlex.split(str(deploy_settings(config_env, samconfig).get("parameter_overrides", "")))
    if resync:
        pairs = [p for p in pairs if not p.startswith("DeploymentType=")] + ["DeploymentType=AllAtOnce"]
    return " ".join(shlex.quote(p) for p in pairs)


# -- deploy settings and names from samconfig.toml --------------------------------------------


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


def _client(name: str, given: Any, region: str | None) -> Any:
    if given is not None:
        return given
    import boto3

    return boto3.client(name, region_name=region)


def _history(codedeploy: Any, where: Stack, alias: str) -> History | None:
    try:
        history = deployment_history(codedeploy, where, alias)
    except Exception as exc:  # no permission, no network: say so and fall back
        print(f"note: CodeDeploy history unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
        history = None
    if history is None:
        print("note: no CodeDeploy history; 'previous' = the newest older published version", file=sys.stderr)
    return history


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onnxlambda release", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status", help="show what each alias serves")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--function", help="function name or ARN (stack output ApiFunctionName)")
    target.add_argument("--config-env", help="samconfig.toml environment (dev, prod): its stack's function")
    p.add_argument("--alias", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--region", default=None)
    p = sub.add_parser("rollback", help="point the alias back (refused while a deployment runs)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name (its outputs name the function and deployment group)")
    target.add_argument("--config-env", help="samconfig.toml environment (dev, prod): its stack")
    p.add_argument("--to", default="previous", help="'previous' (default) or a version number")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--region", default=None)
    sub.add_parser("stamp", help="stamp a sam build output (make build): see onnxlambda_cli.stamp")
    p = sub.add_parser("preflight", help="may this build be deployed now? prints sam deploy's overrides")
    p.add_argument("--config-env", required=True)
    p.add_argument("--template", type=Path, default=BUILT_TEMPLATE, help="the stamped build's template")
    p.add_argument("--region", default=None)
    return parser


def main(
    argv: Sequence[str] | None = None, client: Any = None, codedeploy: Any = None, cloudformation: Any = None
) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["stamp"]:
        from onnxlambda_cli import stamp

        return stamp.main(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        region = args.region or (deploy_region(args.config_env) if args.config_env else None)
        client = _client("lambda", client, region)
        if args.command == "status":
            function = args.function or function_name(args.config_env)
            rows = status(client, function, args.alias)
            out = json.dumps([asdict(r) for r in rows], indent=2) if args.json else None
            print(out or format_status(function, rows))
        elif args.command == "rollback":
            name = args.stack or stack_name(args.config_env)
            where = stack(_client("cloudformation", cloudformation, region), name)
            if where is None:
                raise ReleaseError(f"stack {name} does not exist")
            codedeploy = _client("codedeploy", codedeploy, region)
            active = active_deployments(codedeploy, where)
            history = _history(codedeploy, where, "live") if args.to == "previous" and not active else None
            done = rollback(client, where.function, "live", args.to, history=history, active=active)
            if args.json:
                print(json.dumps(asdict(done)))
            else:
                moved = f"now serves version {done.to_version} (was {done.from_version})"
                print(f"{done.function}:{done.alias} {moved}; version {done.from_version} is withdrawn")
                if done.skipped:
                    print(f"skipped versions {', '.join(done.skipped)}: not what served {done.alias} before")
                print(format_status(where.function, status(client, where.function, "live")))
        else:
            from onnxlambda_cli.cloudformation import load_template

            built = load_template(args.template.read_text())
            checked = preflight(
                client,
                _client("codedeploy", codedeploy, region),
                _client("cloudformation", cloudformation, region),
                stack_name(args.config_env),
                built,
            )
            for note in checked.notes:
                print(f"note: {note}", file=sys.stderr)
            print(deploy_overrides(args.config_env, checked.resync))
    except ReleaseError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
