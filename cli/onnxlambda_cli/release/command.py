"""Which version and model each alias serves, the one-command manual rollback, and the deploy preflight.

    onnxlambda release status    --config-env prod   (or --function onnxlambda-prod-api)
    onnxlambda release rollback  --config-env prod   [--to previous|7]   (or --stack <name>)
    onnxlambda release stamp     --config-env prod --model penguins   (`make build`: onnxlambda_cli.stamp)
    onnxlambda release preflight --config-env prod   (`make deploy`, before `sam deploy`)

The command line over onnxlambda_cli.release's modules; the policies are in its docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from onnxlambda_cli.release import ReleaseError
from onnxlambda_cli.release.deployments import History, Stack, active_deployments, deployment_history, stack
from onnxlambda_cli.release.environments import ROOT, deploy_region, function_name, stack_name
from onnxlambda_cli.release.preflight import deploy_overrides, preflight
from onnxlambda_cli.release.rollback import plan_rollback, rollback
from onnxlambda_cli.release.versions import format_status, status

BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"


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
            plan = plan_rollback(client, where.function, "live", args.to, history=history, active=active)
            done = rollback(client, plan)
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
