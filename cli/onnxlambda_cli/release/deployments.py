"""The stack's release machinery, from its outputs, and its CodeDeploy deployments.

A stack's outputs (template.yaml Outputs) name the API function, the version CloudFormation
recorded as `live`'s, and the CodeDeploy application and deployment group; the group's
deployments say which may still move the alias and which versions served it before.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from onnxlambda_cli.release import ReleaseError

# CodeDeploy DeploymentStatus values of a deployment that may still move the alias, and of a
# finished one (codedeploy API reference, DeploymentStatus).
ACTIVE_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")
FINISHED_STATUSES = ("Succeeded", "Failed", "Stopped")
# DeploymentInfo.creator of deployments that only undo another one: not releases.
ROLLBACK_CREATORS = frozenset({"codeDeployRollback", "CloudFormationRollback"})


@dataclass(frozen=True, slots=True)
class Stack:
    """What a stack's outputs say about its release machinery (template.yaml Outputs)."""

    name: str
    function: str
    recorded_version: str  # the version CloudFormation believes `live` serves
    application: str
    deployment_group: str


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


__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "ROLLBACK_CREATORS",
    "History",
    "Stack",
    "active_deployments",
    "deployment_history",
    "lambda_targets",
    "stack",
]
