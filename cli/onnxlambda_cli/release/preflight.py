"""The deploy preflight (`make deploy`, before `sam deploy`): may this stamped build go out now?

It refuses while a deployment of the stack runs, refuses a build a manual rollback withdrew, and
after a manual rollback allows only a redeploy of what live serves, shifted AllAtOnce; it prints
`sam deploy`'s complete --parameter-overrides.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxlambda_cli import stamp as stamping
from onnxlambda_cli.release import ReleaseError
from onnxlambda_cli.release.deployments import active_deployments, stack
from onnxlambda_cli.release.environments import SAMCONFIG, deploy_settings
from onnxlambda_cli.release.rollback import withdrawn_versions
from onnxlambda_cli.release.versions import version_info


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


__all__ = ["Preflight", "deploy_overrides", "preflight"]
