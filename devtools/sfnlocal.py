"""TEST HARNESS, NOT PRODUCTION: run a Step Functions definition locally, Distributed Map included.

Production runs statemachines/score_large_object.asl.json on AWS Step Functions. Nothing here
runs in Lambda or is deployed. There is no local engine to use instead: Step Functions Local
"does not provide feature parity. For example, there is no support for ... distributed map"
(docs.aws.amazon.com/step-functions/latest/dg/test-and-debug.html), and moto 5's and LocalStack's
interpreters have no ItemBatcher, JSONL or Distributed Map ResultWriter. So this module interprets
the subset of the Amazon States Language (JSONPath) that our definition uses, following the
documented semantics, and raises NotImplementedError for anything else, so that a definition this
driver cannot follow fails its tests instead of being half-run:

- Task `arn:aws:states:::lambda:invoke`: Parameters (`.$` paths into the state input, `$$.` into
  the Context object: Execution.Id/Name, State.Name/RetryCount), the result
  {"ExecutedVersion", "Payload", "StatusCode"}, ResultSelector, ResultPath, Retry, Catch. A function
  error becomes the error named by its `errorType`, with the error document as Cause
  (concepts-error-handling.html); the caller's `invoke` may raise `LambdaInvokeError` for Lambda service
  errors (Lambda.ServiceException, Lambda.TooManyRequestsException, ...).
- Retry (concepts-error-handling.html): the first retrier whose ErrorEquals names the error or
  States.ALL; attempts counted per retrier; IntervalSeconds * BackoffRate^n, capped by
  MaxDelaySeconds, JitterStrategy FULL = a random share of it (scaled by `sleep_scale`, 0 in tests).
  Catch: the first matching catcher, the error output {"Error", "Cause"} at its ResultPath.
- Choice (Variable + StringEquals, Default), Succeed, Fail.
- Map with ItemProcessor.ProcessorConfig.Mode DISTRIBUTED (state-map-distributed.html):
  items from ItemReader `arn:aws:states:::s3:getObject` with ReaderConfig.InputType JSON (the
  object holds a JSON array: input-output-itemreader.html) or from ItemsPath; ItemSelector
  evaluated per item with `$$.Map.Item.Index` / `$$.Map.Item.Value` (input-output-contextobject.html);
  ItemBatcher (MaxItemsPerBatch, MaxInputBytesPerBatch <= 256 KiB, BatchInput; the child input is
  {"Items": [...], "BatchInput": ...}: input-output-itembatcher.html); one child workflow per item
  or batch, at most MaxConcurrency(Path) at a time, each its own execution with its own Retry;
  ToleratedFailurePercentage(Path) / ToleratedFailureCount(Path): the Map Run fails with
  States.ExceedToleratedFailureThreshold once failed / total exceeds it (no new child starts after
  that); ResultWriter `arn:aws:states:::s3:putObject`: <Prefix>/<MapRunId>/manifest.json and
  SUCCEEDED_0.json / FAILED_0.json / PENDING_0.json with Transformation NONE records, and the Map's
  result becomes {"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}} (input-output-resultwriter.html;
  the manifest's exact fields and a failed record's Error/Cause fields are not documented by AWS:
  their shape here follows LocalStack's AWS-recorded snapshots and is marked as such).

`Faults` injects failures at the invoke boundary, where Step Functions meets Lambda: a service
error before the function runs, or a response lost after it ran (the function did its work; Step
Functions retries it anyway), or an error on every attempt.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

REGION = "us-east-1"
ACCOUNT = "123456789012"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
# Errors States.ALL does not catch or retry (concepts-error-handling.html).
TERMINAL = frozenset({"States.Runtime", "States.DataLimitExceeded"})
MAX_BATCH_BYTES = 256 * 1024  # MaxInputBytesPerBatch's ceiling (input-output-itembatcher.html)


class StatesError(Exception):
    """An error a state reports: its name (matched by ErrorEquals) and cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class LambdaInvokeError(StatesError):
    """An invoke that failed, as the lambda:invoke integration reports it."""


class Invoker(Protocol):
    def __call__(self, function: str, payload: dict[str, Any]) -> Any: ...


@dataclass
class Faults:
    """Injected failures, by (action, item index) -> what each attempt does, in order:
    "service" (Lambda.ServiceException, the function does not run), "lost" (the function runs,
    then the response is lost: Lambda.SdkClientException), "error" (Lambda.Unknown, the function
    does not run); attempts beyond the list run normally. Key item index None: not in a Map."""

    plan: dict[tuple[str, int | None], list[str]] = field(default_factory=dict)
    seen: dict[tuple[str, int | None], int] = field(default_factory=dict)
    injected: list[tuple[str, int | None, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, action: str, item: int | None) -> str | None:
        with self._lock:
            key = (action, item)
            attempt = self.seen.get(key, 0)
            self.seen[key] = attempt + 1
            kinds = self.plan.get(key, [])
            kind = kinds[attempt] if attempt < len(kinds) else None
            if kind is not None:
                self.injected.append((action, item, kind))
            return kind


@dataclass
class Event:
    """One line of the local execution history."""

    execution: str
    kind: str
    state: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Execution:
    name: str
    arn: str
    status: str = "RUNNING"
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass
class MapRun:
    arn: str
    total: int
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    children: list[Execution] = field(default_factory=list)


# -- JSONPath (the subset our definition uses: $, $.a.b, $$.A.B) -----------------------------------


def get_path(data: Any, context: Mapping[str, Any], path: str) -> Any:
    root: Any
    if path.startswith("$$"):
        root, rest = context, path[2:]
    elif path.startswith("$"):
        root, rest = data, path[1:]
    else:
        raise StatesError("States.Runtime", f"not a path: {path!r}")
    for part in [p for p in rest.split(".") if p]:
        if "[" in part:
            raise NotImplementedError(f"JSONPath {path!r}: only $.a.b paths are interpreted")
        if not isinstance(root, dict) or part not in root:
            raise StatesError("States.Runtime", f"the JSONPath {path!r} could not be found in the input")
        root = root[part]
    return copy.deepcopy(root)


def resolve(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """A payload template (Parameters, ItemSelector, ResultSelector) with its `.$` fields filled."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = get_path(data, context, value)
            else:
                out[key] = resolve(value, data, context)
        return out
    if isinstance(template, list):
        return [resolve(v, data, context) for v in template]
    return template


def put_path(data: Any, path: str | None, result: Any) -> Any:
    """ResultPath: null keeps the input, "$" replaces it, "$.a.b" sets that field."""
    if path is None:
        return data
    if path == "$":
        return result
    if not path.startswith("$."):
        raise NotImplementedError(f"ResultPath {path!r}")
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = result
    return out


# -- the interpreter ---------------------------------------------------------------------------


@dataclass
class LocalStateMachine:
    """Run one definition (dict, after DefinitionSubstitutions) with `invoke` for Lambda tasks."""

    definition: dict[str, Any]
    invoke: Invoker
    s3: Any = None
    name: str = "local"
    concurrency: int = 2  # child workflows the driver runs at once (MaxConcurrency caps it too)
    sleep_scale: float = 0.0  # Retry intervals x this (0: do not wait in tests)
    faults: Faults = field(default_factory=Faults)
    history: list[Event] = field(default_factory=list)
    map_runs: list[MapRun] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def arn(self) -> str:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.name}"

    def run(self, data: Any, name: str | None = None) -> Execution:
        """One execution, to its end."""
        name = name or str(uuid.uuid4())
        execution = Execution(name, f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{self.name}:{name}")
        self._run(self.definition, data, execution, item=None)
        return execution

    def _record(self, execution: Execution, kind: str, state: str, **detail: Any) -> None:
        with self._lock:
            self.history.append(Event(execution.name, kind, state, detail))

    def _run(self, machine: Mapping[str, Any], data: Any, execution: Execution, item: int | None) -> None:
        states = machine["States"]
        current = machine["StartAt"]
        context: dict[str, Any] = {
            "Execution": {
                "Id": execution.arn,
                "Name": execution.name,
                "Input": copy.deepcopy(data),
                "StartTime": datetime.now(UTC).isoformat(),
            },
            "StateMachine": {"Id": self.arn, "Name": self.name},
        }
        while True:
            state = states[current]
            kind = state["Type"]
            self._record(execution, "entered", current)
            try:
                if kind == "Task":
                    data, nxt = self._task(current, state, data, context, execution, item)
                elif kind == "Map":
                    data, nxt = self._map(current, state, data, context, execution)
                elif kind == "Choice":
                    nxt = self._choice(state, data, context)
                elif kind == "Succeed":
                    execution.status, execution.output = "SUCCEEDED", data
                    return
                elif kind == "Fail":
                    execution.status, execution.error, execution.cause = (
                        "FAILED",
                        state.get("Error"),
                        state.get("Cause"),
                    )
                    self._record(execution, "failed", current, error=execution.error)
                    return
                else:
                    raise NotImplementedError(f"state type {kind} ({current})")
            except StatesError as err:
                execution.status, execution.error, execution.cause = "FAILED", err.error, err.cause
                self._record(execution, "failed", current, error=err.error)
                return
            if nxt is None:
                execution.status, execution.output = "SUCCEEDED", data
                return
            current = nxt

    def _choice(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> str:
        for rule in state["Choices"]:
            unknown = set(rule) - {"Variable", "StringEquals", "Next"}
            if unknown:
                raise NotImplementedError(f"Choice rule fields {sorted(unknown)}")
            try:
                value = get_path(data, context, rule["Variable"])
            except StatesError:
                continue
            if value == rule["StringEquals"]:
                return str(rule["Next"])
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched", "no Choice rule matched and there is no Default")
        return str(state["Default"])

    def _with_retry_and_catch(  # noqa: PLR0917 - a state's run, as every state type calls it
        self,
        name: str,
        state: Mapping[str, Any],
        data: Any,
        context: dict[str, Any],
        execution: Execution,
        attempt: Callable[[int], Any],
    ) -> tuple[Any, str | None]:
        """Run `attempt(retry_count)` under the state's Retry; then its Catch; then fail."""
        counts = [0] * len(state.get("Retry", []))
        retries = 0
        while True:
            context["State"] = {
                "Name": name,
                "EnteredTime": datetime.now(UTC).isoformat(),
                "RetryCount": retries,
            }
            try:
                result = attempt(retries)
            except StatesError as err:
                retrier = self._retrier(state.get("Retry", []), err.error)
                if retrier is not None and counts[retrier] < state["Retry"][retrier].get("MaxAttempts", 3):
                    rule = state["Retry"][retrier]
                    delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** counts[retrier]
                    delay = min(delay, rule.get("MaxDelaySeconds", delay))
                    if rule.get("JitterStrategy") == "FULL":
                        delay *= random.random()  # noqa: S311 - jitter, not security
                    counts[retrier] += 1
                    retries += 1
                    self._record(execution, "retry", name, error=err.error, attempt=retries)
                    time.sleep(delay * self.sleep_scale)
                    continue
                for catcher in state.get("Catch", []):
                    if self._matches(catcher["ErrorEquals"], err.error):
                        self._record(execution, "caught", name, error=err.error)
                        output = put_path(
                            data, catcher.get("ResultPath", "$"), {"Error": err.error, "Cause": err.cause}
                        )
                        return output, str(catcher["Next"])
                raise
            if "ResultSelector" in state:
                result = resolve(state["ResultSelector"], result, context)
            output = put_path(data, state.get("ResultPath", "$"), result)
            if "OutputPath" in state:
                output = get_path(output, context, state["OutputPath"])
            return output, (None if state.get("End") else str(state["Next"]))

    @staticmethod
    def _matches(names: list[str], error: str) -> bool:
        return error in names or ("States.ALL" in names and error not in TERMINAL)

    def _retrier(self, retriers: list[dict[str, Any]], error: str) -> int | None:
        for i, rule in enumerate(retriers):
            if self._matches(rule["ErrorEquals"], error):
                return i
        return None

    def _task(  # noqa: PLR0917 - a state's run
        self,
        name: str,
        state: Mapping[str, Any],
        data: Any,
        context: dict[str, Any],
        execution: Execution,
        item: int | None,
    ) -> tuple[Any, str | None]:
        if state["Resource"] != LAMBDA_INVOKE:
            raise NotImplementedError(f"Task resource {state['Resource']} ({name})")
        for unsupported in ("InputPath", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"):
            if unsupported in state:
                raise NotImplementedError(f"{unsupported} ({name})")

        def attempt(retries: int) -> Any:
            params = resolve(state["Parameters"], data, context)
            function, payload = str(params["FunctionName"]), params.get("Payload", {})
            action = str(payload.get("action")) if isinstance(payload, dict) else name
            fault = self.faults.next(action, item)
            if fault == "service":
                raise LambdaInvokeError(
                    "Lambda.ServiceException", "injected: Lambda service error before the function ran"
                )
            if fault == "error":
                raise LambdaInvokeError(
                    "Lambda.Unknown", "injected: the function failed (crash, timeout, out of memory)"
                )
            answer = self.invoke(function, payload)
            self._record(execution, "invoked", name, function=function, retries=retries)
            if isinstance(answer, dict) and "errorType" in answer and "errorMessage" in answer:
                raise StatesError(str(answer["errorType"]), json.dumps(answer))
            if fault == "lost":
                raise LambdaInvokeError(
                    "Lambda.SdkClientException", "injected: the function ran, its response was lost"
                )
            return {"ExecutedVersion": function.rsplit(":", 1)[-1], "Payload": answer, "StatusCode": 200}

        return self._with_retry_and_catch(name, state, data, context, execution, attempt)

    # -- Distributed Map -----------------------------------------------------------------------

    def _items(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> list[Any]:
        reader = state.get("ItemReader")
        if reader is None:
            items = get_path(data, context, state.get("ItemsPath", "$"))
        else:
            if (
                reader["Resource"] != S3_GET_OBJECT
                or reader.get("ReaderConfig", {}).get("InputType") != "JSON"
            ):
                raise NotImplementedError(f"ItemReader {reader.get('Resource')} {reader.get('ReaderConfig')}")
            params = resolve(reader["Parameters"], data, context)
            request = {"Bucket": params["Bucket"], "Key": params["Key"]}
            if params.get("VersionId"):
                request["VersionId"] = params["VersionId"]
            try:
                items = json.loads(self.s3.get_object(**request)["Body"].read())
            except Exception as exc:
                raise StatesError("States.ItemReaderFailed", f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(items, list):
            raise StatesError("States.ItemReaderFailed", "the dataset is not a JSON array")
        return items

    def _batches(
        self, state: Mapping[str, Any], selected: list[Any], data: Any, context: Mapping[str, Any]
    ) -> list[Any]:
        batcher = state.get("ItemBatcher")
        if batcher is None:
            return selected
        max_items = batcher.get("MaxItemsPerBatch") or len(selected) or 1
        max_bytes = min(batcher.get("MaxInputBytesPerBatch") or MAX_BATCH_BYTES, MAX_BATCH_BYTES)
        batch_input = resolve(batcher["BatchInput"], data, context) if "BatchInput" in batcher else None
        batches: list[Any] = []
        current: list[Any] = []
        for item in selected:
            candidate = [*current, item]
            body = {"Items": candidate, **({"BatchInput": batch_input} if batch_input is not None else {})}
            too_big = len(json.dumps(body).encode()) > max_bytes
            if current and (len(candidate) > max_items or too_big):
                batches.append(current)
                current = [item]
            else:
                current = candidate
        if current:
            batches.append(current)
        return [
            {"Items": b, **({"BatchInput": batch_input} if batch_input is not None else {})} for b in batches
        ]

    def _map(
        self, name: str, state: Mapping[str, Any], data: Any, context: dict[str, Any], execution: Execution
    ) -> tuple[Any, str | None]:
        processor = state["ItemProcessor"]
        config = processor.get("ProcessorConfig", {})
        if config.get("Mode") != "DISTRIBUTED" or config.get("ExecutionType") not in {"STANDARD", "EXPRESS"}:
            raise NotImplementedError(f"Map {name}: only DISTRIBUTED with an ExecutionType is interpreted")

        def attempt(_: int) -> Any:
            items = self._items(state, data, context)
            selected = []
            for index, value in enumerate(items):
                item_context = {**context, "Map": {"Item": {"Index": index, "Value": copy.deepcopy(value)}}}
                selected.append(
                    resolve(state["ItemSelector"], data, item_context) if "ItemSelector" in state else value
                )
            inputs = self._batches(state, selected, data, context)
            limit = self._number(state, "MaxConcurrency", data, context, default=0)
            pct = self._number(state, "ToleratedFailurePercentage", data, context, default=0)
            count = self._number(state, "ToleratedFailureCount", data, context, default=None)
            run = self._run_children(name, processor, inputs, int(limit), float(pct), count)
            if run.failed and (
                run.failed * 100.0 / max(run.total, 1) > float(pct)
                or (count is not None and run.failed > count)
            ):
                raise StatesError(
                    "States.ExceedToleratedFailureThreshold",
                    f"the tolerated failure threshold was exceeded: {run.failed} of {run.total} failed",
                )
            return self._results(state, run, data, context)

        return self._with_retry_and_catch(name, state, data, context, execution, attempt)

    def _number(
        self, state: Mapping[str, Any], field_name: str, data: Any, context: Mapping[str, Any], default: Any
    ) -> Any:
        if f"{field_name}Path" in state:
            return get_path(data, context, state[f"{field_name}Path"])
        return state.get(field_name, default)

    def _run_children(  # noqa: PLR0917 - one Map Run's settings
        self, name: str, processor: Mapping[str, Any], inputs: list[Any], limit: int, pct: float, count: Any
    ) -> MapRun:
        run = MapRun(
            f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{self.name}/{name}:{uuid.uuid4()}", len(inputs)
        )
        workers = max(1, min(self.concurrency, limit or self.concurrency))
        children = [
            Execution(f"{i:06d}-{uuid.uuid4().hex[:8]}", f"{run.arn}:{i:06d}") for i in range(len(inputs))
        ]
        for child, given in zip(children, inputs, strict=True):
            child.input = copy.deepcopy(given)
        run.children = children

        def exceeded() -> bool:
            return run.failed > 0 and (
                run.failed * 100.0 / max(run.total, 1) > pct or (count is not None and run.failed > count)
            )

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="map-child") as pool:
            pending = list(range(len(inputs)))
            running: dict[Future[None], int] = {}
            while pending or running:
                while pending and len(running) < workers and not exceeded():
                    i = pending.pop(0)
                    running[pool.submit(self._run, processor, copy.deepcopy(inputs[i]), children[i], i)] = i
                if not running:
                    break  # the threshold was exceeded: no new child starts
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    future.result()
                    with self._lock:
                        if children[i].status == "SUCCEEDED":
                            run.succeeded += 1
                        else:
                            run.failed += 1
            run.pending = len(pending)
            for i in pending:
                children[i].status = "PENDING"
        self.map_runs.append(run)
        return run

    def _results(self, state: Mapping[str, Any], run: MapRun, data: Any, context: Mapping[str, Any]) -> Any:
        writer = state.get("ResultWriter")
        if writer is None:
            return [c.output for c in run.children if c.status == "SUCCEEDED"]
        if writer["Resource"] != S3_PUT_OBJECT:
            raise NotImplementedError(f"ResultWriter {writer['Resource']}")
        params = resolve(writer["Parameters"], data, context)
        bucket, prefix = params["Bucket"], params["Prefix"]
        run_id = run.arn.rsplit(":", 1)[-1]
        files: dict[str, list[dict[str, Any]]] = {}
        for status in ("SUCCEEDED", "FAILED", "PENDING"):
            records = [self._record_of(c, run) for c in run.children if c.status == status]
            if records:
                key = f"{prefix}/{run_id}/{status}_0.json"
                body = json.dumps(records).encode()
                self.s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status] = [{"Key": key, "Size": len(body)}]
        manifest_key = f"{prefix}/{run_id}/manifest.json"
        # manifest.json fields: not in AWS docs; as in LocalStack's AWS-recorded test_map_state_result_writer.
        manifest = {"DestinationBucket": bucket, "MapRunArn": run.arn, "ResultFiles": files}
        self.s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
        return {"MapRunArn": run.arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}}

    def _record_of(self, child: Execution, run: MapRun) -> dict[str, Any]:
        """A Transformation NONE record (input-output-resultwriter.html); Error/Cause on failed
        records are not shown by AWS docs (marked UNVERIFIED in the research notes)."""
        record: dict[str, Any] = {
            "ExecutionArn": child.arn,
            "Name": child.name,
            "StateMachineArn": f"{self.arn}/{run.arn.rsplit('/', 1)[-1].split(':')[0]}",
            "Status": child.status,
            "Input": json.dumps(child.input),
            "InputDetails": {"Included": True},
        }
        if child.status == "SUCCEEDED":
            record["Output"] = json.dumps(child.output)
            record["OutputDetails"] = {"Included": True}
        elif child.status == "FAILED":
            record["Error"], record["Cause"] = child.error, child.cause
        return record


def load_definition(path: Path, substitutions: Mapping[str, str]) -> dict[str, Any]:
    """The ASL file with its ${...} DefinitionSubstitutions replaced, as CloudFormation does."""
    text = path.read_text()
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise ValueError(f"{path}: a substitution is left unreplaced")
    definition: dict[str, Any] = json.loads(text)
    return definition


__all__ = [
    "Execution",
    "Faults",
    "Invoker",
    "LambdaInvokeError",
    "LocalStateMachine",
    "MapRun",
    "StatesError",
    "get_path",
    "load_definition",
    "put_path",
    "resolve",
]
