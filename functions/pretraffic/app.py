"""CodeDeploy PreTraffic hook: the golden set against the new API function version, before any traffic.

Transport only: read the CodeDeploy event, run the core's golden gate against the version named
in ONNXLAMBDA_TARGET_FUNCTION_VERSION (the template passes `!Ref ApiFunction.Version`, the new version's
ARN), and report Succeeded or Failed to CodeDeploy. Failed stops the deployment and CodeDeploy
leaves the alias on the old version. Every outcome is reported - an unreported hook would hold
the deployment for an hour before CodeDeploy gives up.

With PreTrafficReplayRows > 0 (issue 15) a passing golden gate is followed by a replay of the
newest captured traffic through the new version's model (onnxlambda.release.replay_gate).
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from onnxlambda import settings
from onnxlambda.contract.manifest import load_golden, load_manifest
from onnxlambda.release.gate import GateResult, lambda_invoker, run_golden_gate
from onnxlambda.settings import Settings

logger = Logger()
# Created on first use so tests (and moto) can put their own clients here first.
clients: dict[str, Any] = {}
UNSET = ("", "unset")


def client(name: str) -> Any:
    if name not in clients:
        import boto3
        from botocore.config import Config

        # A cold new version loads onnxruntime and the model: give the invoke time, never retry it.
        # S3 (the replay's capture reads) and CodeDeploy retry; the invoke of the new version never does.
        config = Config(read_timeout=120, retries={"max_attempts": 2 if name in ("codedeploy", "s3") else 0})
        clients[name] = boto3.client(name, config=config)
    return clients[name]


def check_new_version() -> GateResult:
    target = settings.get("ONNXLAMBDA_TARGET_FUNCTION_VERSION")
    if not target:
        raise ValueError("ONNXLAMBDA_TARGET_FUNCTION_VERSION is not set: the hook has no version to check")
    model_dir = Settings.from_env().model_dir
    manifest = load_manifest(model_dir)
    expected_sha = settings.get("ONNXLAMBDA_EXPECTED_MODEL_SHA256")
    logger.append_keys(target=target, model_name=manifest.name, model_version=manifest.version)
    result = run_golden_gate(
        lambda_invoker(client("lambda"), target),
        manifest,
        load_golden(model_dir, manifest),
        expected_sha256=None if expected_sha in UNSET else expected_sha,
    )
    return replay_recent_capture(result, model_dir) if result.passed else result


def replay_recent_capture(result: GateResult, model_dir: Path) -> GateResult:
    """Release safety (issue 15): with PreTrafficReplayRows > 0, the newest captured rows through
    the new version's model (this hook's model layer is the version's), compared with what the
    serving model answered; skipped while there is too little capture."""
    from onnxlambda.release.replay_gate import ReplayGateSettings

    settings = ReplayGateSettings.from_env()
    if not settings.enabled:
        return result
    from onnxlambda.release.replay_gate import replay_gate  # imports onnxruntime: only when replay is on
    from onnxlambda.serving.runtime import ModelRuntime

    outcome = replay_gate(client("s3"), ModelRuntime.load(model_dir), settings, datetime.now(UTC))
    logger.info("replay of recent capture", extra={"replay": outcome.summary, "passed": outcome.passed})
    if outcome.passed:
        return result
    return GateResult(False, [*result.problems, *outcome.problems], result.served_model)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        result = check_new_version()
    except Exception as exc:  # any failure of the check itself is a failed gate, never a hang
        logger.exception("golden-set check could not run")
        result = GateResult(False, [f"check could not run: {type(exc).__name__}: {exc}"])
    for problem in result.problems:
        logger.warning("golden-set problem", extra={"problem": problem})
    logger.info("golden-set gate", extra={"status": result.status, "served_model": result.served_model})
    client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=result.status,
    )
    return {"status": result.status, "problems": result.problems}
