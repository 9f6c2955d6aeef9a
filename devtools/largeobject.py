"""TEST HARNESS: the large-object path end to end without AWS (production uses Step Functions).

The built functions run under the Lambda Runtime Interface Emulator (devtools/rie.py) against
moto in server mode (S3 and Step Functions on loopback, devtools/motoserver.py):

1. the built BatchFunction gets the S3 put event; for an object above ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES
   it calls StartExecution on moto's Step Functions (moto records the execution; it does not run
   Distributed Map);
2. the execution's input is read back from moto and handed to the local driver
   (devtools/sfnlocal.py), which interprets statemachines/score_large_object.asl.json;
3. the driver's Lambda tasks invoke a pool of emulated BatchRangeFunction environments, one invoke
   at a time each, as Lambda's execution environments serve them.

Used by tests/integration/test_distributed_emulated.py (a scaled-down file) and
devtools/distributed_compare.py (`make distributed-compare`: 2 M rows, against the single path).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from devtools.batchdata import sample_rows
from devtools.motoserver import CREDENTIALS, function_env
from devtools.rie import BuiltFunction, EmulatedFunction
from devtools.sfnlocal import Execution, Faults, LocalStateMachine, load_definition
from onnxlambda.contract.manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = ROOT / "statemachines" / "score_large_object.asl.json"
EVENT: dict[str, Any] = json.loads((ROOT / "events" / "s3_put_csv.json").read_text())
ROLE = "arn:aws:iam::123456789012:role/large-objects"
# What DefinitionSubstitutions gives the definition on AWS: the range function's `live` alias.
ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:BatchRangeFunction:live"


@dataclass
class Call:
    action: str
    index: int | None
    seconds: float
    answer: Any


@dataclass
class EmulatorPool:
    """Emulated execution environments of the range function; an invoke takes a free one (so at
    most len(functions) run at once, like reserved concurrency) and waits for its answer."""

    functions: list[EmulatedFunction]
    calls: list[Call] = field(default_factory=list)
    _free: queue.Queue[EmulatedFunction] = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for fn in self.functions:
            self._free.put(fn)

    def __call__(self, function: str, payload: dict[str, Any]) -> Any:
        # every ARN the definition or a job names must be this function (alias or version)
        if ":function:BatchRangeFunction" not in function:
            raise AssertionError(f"the state machine invoked {function}, not the range function")
        fn = self._free.get()
        started = time.perf_counter()
        try:
            answer = fn.invoke(payload, timeout=900)
        finally:
            self._free.put(fn)
        rng = payload.get("range") or {}
        with self._lock:
            self.calls.append(
                Call(str(payload.get("action")), rng.get("index"), time.perf_counter() - started, answer)
            )
        return answer


def sample_csv(manifest: Manifest, rows: int, *, line_breaks: bool = True) -> bytes:
    """A CSV of `rows` rows drawn from the manifest's baselines, with an id column: every 97th id
    holds a comma and a quoted line break (unless `line_breaks` is False: plain rows, no quote),
    every 1,000th row is one field short (wrong_field_count), every other 1,500th has a body mass
    that is not a number (wrong_type)."""
    names = ["id", *manifest.feature_names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    mass = manifest.feature_names.index("body_mass_g") if "body_mass_g" in manifest.feature_names else 0
    for start in range(0, rows, 10_000):
        for i, row in enumerate(
            sample_rows(manifest, min(10_000, rows - start), seed=start), start=start + 1
        ):
            cells: list[Any] = ["" if row.get(n) is None else row[n] for n in manifest.feature_names]
            ident = f"r{i}, batch\nB" if line_breaks and i % 97 == 0 else f"r{i}"
            if i % 1500 == 0:
                cells[mass] = "heavy"
            line = [ident, *cells]
            writer.writerow(line[:-1] if i % 1000 == 0 else line)
    return buffer.getvalue().encode()


def put_event(key: str, size: int, etag: str, version_id: str | None) -> dict[str, Any]:
    """The S3 put event for an object, from events/s3_put_csv.json (its bucket)."""
    event = copy.deepcopy(EVENT)
    obj = event["Records"][0]["s3"]["object"]
    obj.update(key=quote_plus(key, safe="/"), size=size, eTag=etag)
    obj["versionId"] = version_id
    return event


def bucket() -> str:
    return str(EVENT["Records"][0]["s3"]["bucket"]["name"])


def state_machine(endpoint: str) -> str:
    """The large-object state machine, created in moto's Step Functions (where StartExecution
    records executions); the definition is the real file."""
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    definition = load_definition(DEFINITION, {"RangeFunctionAlias": ALIAS})
    name = "onnxlambda-local-large-objects"
    arns = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name]
    if arns:
        return str(arns[0])
    return str(
        sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
            "stateMachineArn"
        ]
    )


def started_input(endpoint: str, execution_arn: str) -> dict[str, Any]:
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    answer: dict[str, Any] = json.loads(sfn.describe_execution(executionArn=execution_arn)["input"])
    return answer


def range_functions(stack: ExitStack, build_dir: Path, endpoint: str, count: int, **env: str) -> EmulatorPool:
    """`count` emulated BatchRangeFunction environments talking to moto, in one pool."""
    built = BuiltFunction.from_build("BatchRangeFunction", build_dir)
    functions = [
        stack.enter_context(EmulatedFunction(built, extra_env=function_env(endpoint, **env)))
        for _ in range(count)
    ]
    return EmulatorPool(functions)


def run(
    s3: Any,
    pool: EmulatorPool,
    execution_input: dict[str, Any],
    *,
    name: str,
    concurrency: int,
    faults: Faults | None = None,
) -> tuple[LocalStateMachine, Execution]:
    """Run the definition on `execution_input` with the local driver and the emulated functions."""
    definition = load_definition(DEFINITION, {"RangeFunctionAlias": ALIAS})
    machine = LocalStateMachine(
        definition,
        pool,
        s3,
        name="onnxlambda-local-large-objects",
        concurrency=concurrency,
        faults=faults or Faults(),
    )
    return machine, machine.run(execution_input, name=name)


__all__ = [
    "ALIAS",
    "Call",
    "EmulatorPool",
    "bucket",
    "put_event",
    "range_functions",
    "run",
    "sample_csv",
    "started_input",
    "state_machine",
]
