"""CodeDeploy PreTraffic hook: the golden set against the new API function version, before any traffic.

Transport only: read the CodeDeploy event, run the core's golden gate against the version named
in ONNXLAMBDA_TARGET_FUNCTION_VERSION (the template passes `!Ref ApiFunction.Version`, the new version's
ARN), and report Succeeded or Failed to CodeDeploy. Failed stops the deployment and CodeDeploy
leaves the alias on the old version. Every outcome is reported - an unreported hook would hold
the deployment for an hour before CodeDeploy gives up.
"""

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
        config = Config(read_timeout=120, retries={"max_attempts": 2 if name == "codedeploy" else 0})
        clients[name] = boto3.client(name, config=config)
    return clients[name]


def check_new_version() -> GateResult:
    target = settings.get("TARGET_FUNCTION_VERSION")
    if not target:
        raise ValueError("ONNXLAMBDA_TARGET_FUNCTION_VERSION is not set: the hook has no version to check")
    model_dir = Settings.from_env().model_dir
    manifest = load_manifest(model_dir)
    expected_sha = settings.get("EXPECTED_MODEL_SHA256")
    logger.append_keys(target=target, model_name=manifest.name, model_version=manifest.version)
    return run_golden_gate(
        lambda_invoker(client("lambda"), target),
        manifest,
        load_golden(model_dir, manifest),
        expected_sha256=None if expected_sha in UNSET else expected_sha,
    )


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
