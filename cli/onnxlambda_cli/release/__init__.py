"""`onnxlambda release`: which version and model each alias serves, the one-command manual
rollback, the deploy preflight, and the build stamp (onnxlambda_cli.stamp).

    command.py       the command line: status | rollback | stamp | preflight
    versions.py      published versions and what each alias serves (Lambda)
    deployments.py   the stack's release outputs and its CodeDeploy deployments
    rollback.py      which version a rollback moves `live` to, and the move
    preflight.py     may this build be deployed now; `sam deploy`'s parameter overrides
    environments.py  samconfig.toml environments: stack, function, region, deploy settings

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


class ReleaseError(Exception):
    """A request the CLI refuses, with a message meant for the operator."""


__all__ = ["ReleaseError"]
