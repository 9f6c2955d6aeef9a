"""A manual rollback: which version `live` moves back to (or why it must not), and the move.

`plan_rollback` decides and refuses (ReleaseError); `rollback` carries a plan out and records it:
who moved the alias from where (its description) and the version moved away from as withdrawn
(a function tag, read by the deploy preflight).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onnxlambda_cli.release import ReleaseError
from onnxlambda_cli.release.deployments import History
from onnxlambda_cli.release.versions import published_versions

WITHDRAWN_TAG = "onnxlambda:withdrawn"  # versions a manual rollback moved `live` away from


@dataclass(frozen=True, slots=True)
class Rollback:
    function: str
    alias: str
    from_version: str
    to_version: str
    # Older versions passed over because no deployment ever made them serve the alias.
    skipped: tuple[str, ...] = ()


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


def rollback(client: Any, plan: Rollback) -> Rollback:
    """Point the alias at the plan's version (`plan_rollback`) and record the move."""
    function, alias = plan.function, plan.alias
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


__all__ = ["WITHDRAWN_TAG", "Rollback", "plan_rollback", "rollback", "withdrawn_versions"]
