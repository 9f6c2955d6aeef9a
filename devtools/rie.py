"""Run a `sam build` output under the real AWS Lambda Runtime Interface Emulator, no Docker.

The emulator binary ships inside aws-sam-cli (samcli/local/rapid/aws-lambda-rie-x86_64). It runs
`python -m awslambdaric <handler>` exactly as the Lambda base images do. We lay the built layers
out the way /opt would hold them: layer `python/` directories on PYTHONPATH after the function
code, and ONNXLAMBDA_MODEL_DIR pointing at the model layer's `model/` directory.

The interpreter is the runtime venv (.venv-runtime): it holds only what the python3.13 Lambda
runtime itself provides (awslambdaric, boto3), so a dependency missing from the layers fails
here as it would on Lambda.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from onnxlambda_cli.cloudformation import load_template

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
LOCAL_STACK_NAME = "onnxlambda-local"  # ${AWS::StackName} under the emulator (metrics service name)
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_REPORT = re.compile(
    r"REPORT RequestId: (?P<id>\S+)\s+(?:Init Duration: (?P<init>[\d.]+) ms\s+)?"
    r"Duration: (?P<dur>[\d.]+) ms\s+Billed Duration: (?P<billed>[\d.]+) ms\s+"
    r"Memory Size: (?P<mem>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB"
)


def rie_binary() -> Path:
    env = os.environ.get("RIE_BINARY")
    if env:
        return Path(env)
    found = sorted(
        (ROOT / ".venv-sam").glob("lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64")
    )
    if not found:
        raise FileNotFoundError(
            "aws-lambda-rie-x86_64 not found: run `make setup` (it ships inside aws-sam-cli)"
        )
    return found[0]


def runtime_python() -> Path:
    return Path(os.environ.get("RUNTIME_PYTHON") or ROOT / ".venv-runtime" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class BuiltFunction:
    """A function in the `sam build` output with what it needs to run like on Lambda."""

    logical_id: str
    code_dir: Path
    handler: str
    layer_dirs: list[Path]
    environment: dict[str, str]
    memory_mb: int
    timeout_s: int

    @classmethod
    def from_build(cls, logical_id: str, build_dir: Path = BUILD_DIR) -> BuiltFunction:
        template = load_template((build_dir / "template.yaml").read_text())
        resources = template["Resources"]
        glob = template.get("Globals", {}).get("Function", {})
        props = resources[logical_id]["Properties"]
        layers = [
            ref["Ref"] if isinstance(ref, dict) else ref
            # SAM appends a function's own Layers to the Globals' (the challenger layer, issue 15)
            for ref in [*(glob.get("Layers") or []), *(props.get("Layers") or [])]
        ]
        layer_dirs = [
            build_dir / resources[name]["Properties"]["ContentUri"] if name in resources else build_dir / name
            for name in layers
            if name
        ]
        # A parameter's default (what `make build` pinned), the stamp's mapping, a local stack name.
        known: dict[str, Any] = {"AWS::StackName": LOCAL_STACK_NAME}
        known |= {k: v.get("Default") for k, v in (template.get("Parameters") or {}).items()}
        env: dict[str, str] = {}
        for source in (glob.get("Environment", {}), props.get("Environment", {})):
            for key, raw in (source.get("Variables") or {}).items():
                value = raw
                if isinstance(raw, dict) and known.get(str(raw.get("Ref"))) is not None:
                    value = known[str(raw["Ref"])]
                elif isinstance(raw, dict) and isinstance(raw.get("Fn::FindInMap"), list):
                    mapping, top, second = raw["Fn::FindInMap"]
                    value = template.get("Mappings", {}).get(mapping, {}).get(top, {}).get(second)
                if isinstance(value, (str, int, float)):
                    env[key] = str(value)
        return cls(
            logical_id=logical_id,
            code_dir=build_dir / props["CodeUri"],
            handler=props["Handler"],
            layer_dirs=layer_dirs,
            environment=env,
            memory_mb=int(props.get("MemorySize") or glob.get("MemorySize") or 128),
            timeout_s=int(props.get("Timeout") or glob.get("Timeout") or 3),
        )

    def opt_env(self) -> dict[str, str]:
        """The environment Lambda would give the function, with /opt mapped to the built layers."""
        python_dirs = [str(self.code_dir)] + [
            str(d / "python") for d in self.layer_dirs if (d / "python").is_dir()
        ]
        env = dict(self.environment)
        for d in self.layer_dirs:
            if (d / "model").is_dir():
                env["ONNXLAMBDA_MODEL_DIR"] = str(d / "model")
            if (d / "challenger").is_dir():  # the shadow challenger's layer (issue 15)
                env["ONNXLAMBDA_CHALLENGER_DIR"] = str(d / "challenger")
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(python_dirs),
                "LAMBDA_TASK_ROOT": str(self.code_dir),
                "AWS_LAMBDA_FUNCTION_NAME": self.logical_id,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_s),
                "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env


@dataclass
class Report:
    request_id: str
    duration_ms: float
    billed_ms: float
    init_ms: float | None
    max_memory_mb: int


@dataclass
class EmulatedFunction:
    """One emulator process serving one built function on a loopback port (one invoke at a time)."""

    function: BuiltFunction
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, wait_s: float = 30.0) -> EmulatedFunction:
        self.port = self.port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(self.function.opt_env())
        env.update(self.extra_env)
        cmd = [
            str(rie_binary()),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{self.port}",
            "--runtime-api-address",
            f"127.0.0.1:{free_port()}",
            str(runtime_python()),
            "-m",
            "awslambdaric",
            self.function.handler,
        ]
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.function.code_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._pump, args=(self._proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("emulator exited early:\n" + "\n".join(self.log[-30:]))
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"emulator did not listen on {self.port} within {wait_s}s")

    def _pump(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for raw in stream:
            line = raw.rstrip("\n")
            self.log.append(line)
            match = _REPORT.search(line)
            if match:
                self.reports.append(
                    Report(
                        request_id=match["id"],
                        duration_ms=float(match["dur"]),
                        billed_ms=float(match["billed"]),
                        init_ms=float(match["init"]) if match["init"] else None,
                        max_memory_mb=int(match["used"]),
                    )
                )

    def invoke_raw(self, payload: bytes, timeout: float = 60.0) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{INVOKE_PATH}",
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with self._lock, urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return bytes(response.read())

    def invoke(self, event: object, timeout: float = 60.0) -> Any:
        return json.loads(self.invoke_raw(json.dumps(event).encode(), timeout=timeout))

    def wait_for_report(self, count: int, timeout: float = 5.0) -> Report:
        """The REPORT line of invocation number `count` (1-based); it is logged just after the reply."""
        deadline = time.monotonic() + timeout
        while len(self.reports) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        if len(self.reports) < count:
            raise TimeoutError(f"no REPORT line for invocation {count}")
        return self.reports[count - 1]

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> EmulatedFunction:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def emulated(logical_id: str, build_dir: Path = BUILD_DIR, **env: str) -> Iterator[EmulatedFunction]:
    fn = EmulatedFunction(BuiltFunction.from_build(logical_id, build_dir), extra_env=env)
    with fn:
        yield fn


__all__ = ["BUILD_DIR", "BuiltFunction", "EmulatedFunction", "Report", "emulated", "free_port", "rie_binary"]


if (
    __name__ == "__main__"
):  # pragma: no cover - manual smoke: python -m devtools.rie ApiFunction events/x.json
    import sys

    with emulated(sys.argv[1]) as fn:
        print(json.dumps(fn.invoke(json.loads(Path(sys.argv[2]).read_text())), indent=2))
        print(fn.wait_for_report(1))
