"""The pre-traffic gate: run the golden set against a deployed function version before it gets traffic.

The gate talks to the version under test the way API Gateway does - HTTP API (payload 2.0)
events through Lambda Invoke - so it exercises the whole deployed artifact: function code, core
layer, model layer and configuration. It passes only when

- the golden set belongs to the manifest it is checked against (a mis-built layer fails here);
- GET /health answers 200 "ready" and names the manifest's model name, version and sha256 (and
  the sha256 the release was built for, when one is given) - a tampered or missing model never
  loads, so it answers 503 and fails;
- POST /predict of every golden row answers 200 with outputs within the manifest's tolerances;
- no invoke ends in a function error (crash, timeout, out of memory).

`invoke` is any callable from an event to the function's result; `lambda_invoker` builds one
from a boto3 Lambda client (passed in, so tests can point it at the emulator or at moto).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onnxlambda.contract.manifest import GoldenSet, Manifest
from onnxlambda.release.golden import check_golden_set, check_model_ref, compare_predictions, golden_request

Invoke = Callable[[dict[str, Any]], Any]
USER_AGENT = "onnxlambda-pretraffic"
MAX_PROBLEMS = 50


class FunctionError(Exception):
    """The invoked function did not return a result: it raised, timed out or ran out of memory."""


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    problems: list[str] = field(default_factory=list)
    served_model: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """The CodeDeploy lifecycle hook status this result reports."""
        return "Succeeded" if self.passed else "Failed"


def run_golden_gate(
    invoke: Invoke, manifest: Manifest, golden: GoldenSet, expected_sha256: str | None = None
) -> GateResult:
    problems = [str(m) for m in check_golden_set(manifest, golden)]
    if expected_sha256 and expected_sha256 != manifest.sha256:
        problems.append(f"manifest sha256 {manifest.sha256} is not the released {expected_sha256}")
    if problems:
        return GateResult(False, problems)
    try:
        status, health = _call(invoke, "GET", "/health")
        served = health.get("model") if isinstance(health, dict) else None
        if status != 200 or not isinstance(health, dict) or health.get("status") != "ready":
            reason = health.get("reason") if isinstance(health, dict) else health
            return GateResult(False, [f"GET /health answered {status}: {reason}"], None)
        problems += [str(m) for m in check_model_ref(manifest, served)]
        status, body = _call(invoke, "POST", "/predict", golden_request(golden))
    except FunctionError as exc:
        return GateResult(False, [*problems, f"function error: {exc}"])
    if status != 200:
        problems.append(f"POST /predict of the golden set answered {status}: {_short(body)}")
    else:
        problems += [str(m) for m in compare_predictions(manifest, golden, body)]
    return GateResult(not problems, _capped(problems), served if isinstance(served, dict) else None)


def _call(invoke: Invoke, method: str, path: str, body: object = None) -> tuple[int, Any]:
    result = invoke(http_event(method, path, body))
    if not isinstance(result, dict) or "statusCode" not in result:
        raise FunctionError(f"{method} {path} returned no HTTP response: {_short(result)}")
    raw = result.get("body") or ""
    try:
        parsed = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        parsed = raw
    return int(result["statusCode"]), parsed


def http_event(method: str, path: str, body: object = None) -> dict[str, Any]:
    """A minimal API Gateway HTTP API (payload 2.0) event, as the gateway would send it."""
    request_id = f"pretraffic-{uuid.uuid4().hex[:12]}"
    headers = {"user-agent": USER_AGENT}
    if body is not None:
        headers["content-type"] = "application/json"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": request_id,
            "routeKey": f"{method} {path}",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def lambda_invoker(client: Any, function: str) -> Invoke:
    """Invoke `function` (a qualified version ARN in production) synchronously through `client`."""

    def invoke(event: dict[str, Any]) -> Any:
        try:
            response = client.invoke(
                FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
        except Exception as exc:  # e.g. a 502 when the runtime cannot start the function at all
            raise FunctionError(f"invoke failed: {type(exc).__name__}: {exc}") from exc
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise FunctionError(f"{response['FunctionError']}: {_short(payload)}")
        return json.loads(payload) if payload else None

    return invoke


def _short(value: object, limit: int = 300) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]


__all__ = ["FunctionError", "GateResult", "Invoke", "http_event", "lambda_invoker", "run_golden_gate"]
