"""Bounded load through the local HTTP front: fixed users, duration and request cap, loopback only.

    python -m devtools.load --seconds 120 --users 8 --workers 2      # after `sam build` (make load)

Each virtual user sends, in a fixed rotation, one-row and ten-row predictions from the model's
golden set, a health check, and a request that must be refused (422). Every answer is checked:
a 200 must carry exactly one prediction per row sent, a refusal its documented status; anything
else counts as lost. Memory (VmRSS, VmHWM) of the awslambdaric runtime processes is read from
/proc after a warm-up and at the end, with their pids, so a restart would show too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devtools.rie import BUILD_DIR, EmulatedFunction
from devtools.serve import serving


@dataclass(frozen=True, slots=True)
class Call:
    """One kind of request and what a correct answer looks like."""

    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    rows: int = 0  # predictions a 200 must carry


def calls_for(model_dir: Path) -> list[Call]:
    golden = json.loads((model_dir / "golden.json").read_text())
    rows = [c["instance"] for c in golden["cases"]]
    ten = (rows * 10)[:10]
    bad = dict(rows[0])
    first = next(iter(bad))
    bad[first] = [1, 2]  # a list is never a valid feature value: 422 wrong_type
    return [
        Call("predict_1", "POST", "/predict", json.dumps({"instances": rows[:1]}).encode(), 200, 1),
        Call("predict_10", "POST", "/predict", json.dumps({"instances": ten}).encode(), 200, 10),
        Call("health", "GET", "/health", None, 200),
        Call("predict_1", "POST", "/predict", json.dumps({"instances": rows[1:2]}).encode(), 200, 1),
        Call("invalid_422", "POST", "/predict", json.dumps({"instances": [bad]}).encode(), 422),
    ]


@dataclass
class Outcome:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # wrong status, wrong row count, transport error
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentiles(self) -> dict[str, float]:
        if len(self.latencies_ms) < 2:
            return {}
        q = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return {
            "p50": round(q[49], 2),
            "p95": round(q[94], 2),
            "p99": round(q[98], 2),
            "max": round(max(self.latencies_ms), 2),
        }

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def _send(base: str, call: Call, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        base + call.path, data=call.body, method=call.method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def _check(call: Call, status: int, body: bytes) -> str | None:
    if status != call.status:
        return f"{call.name}: status {status}, expected {call.status}: {body[:200]!r}"
    if call.rows:
        predictions = json.loads(body).get("predictions", [])
        if len(predictions) != call.rows or len({p["inference_id"] for p in predictions}) != call.rows:
            return f"{call.name}: {len(predictions)} predictions for {call.rows} rows"
    return None


def run_load(
    base: str, calls: list[Call], *, users: int, seconds: float, max_requests: int, timeout: float = 30.0
) -> Outcome:
    """`users` threads loop over `calls` until `seconds` pass or `max_requests` are sent in total."""
    outcome = Outcome()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def user(offset: int) -> None:
        i = offset
        while time.monotonic() < deadline:
            with lock:
                if outcome.requests >= max_requests:
                    return
                outcome.requests += 1
            call = calls[i % len(calls)]
            i += 1
            started = time.perf_counter()
            try:
                status, body = _send(base, call, timeout)
                problem = _check(call, status, body)
            except (OSError, ValueError) as exc:  # connection errors, timeouts, unparseable bodies
                status, problem = 0, f"{call.name}: {exc!r}"
            latency = (time.perf_counter() - started) * 1000.0
            with lock:
                outcome.statuses[status] += 1
                outcome.latencies_ms.append(latency)
                if problem:
                    outcome.lost.append(problem)

    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 5)
    outcome.elapsed_s = time.monotonic() - started
    return outcome


# -- memory of the runtime processes ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcMemory:
    pid: int
    rss_kb: int
    hwm_kb: int


def runtime_processes(emulators: list[EmulatedFunction]) -> list[int]:
    """pids of the `python -m awslambdaric` processes the emulators started."""
    parents = {str(e._proc.pid) for e in emulators if e._proc is not None}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if ppid in parents and b"awslambdaric" in cmdline:
            pids.append(int(proc.name))
    return sorted(pids)


def memory(pids: list[int]) -> list[ProcMemory]:
    out = []
    for pid in pids:
        fields = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        out.append(ProcMemory(pid, fields["VmRSS"], fields["VmHWM"]))
    return out


def warm_up(base: str, calls: list[Call], workers: int) -> Outcome:
    """A short burst so every emulator is initialised and its allocator has settled."""
    return run_load(base, calls, users=workers, seconds=60, max_requests=max(50, 25 * workers))


def report(
    outcome: Outcome, before: list[ProcMemory], after: list[ProcMemory], **config: Any
) -> dict[str, Any]:
    return {
        "config": config,
        "requests": outcome.requests,
        "elapsed_s": round(outcome.elapsed_s, 2),
        "throughput_rps": round(outcome.requests / outcome.elapsed_s, 1) if outcome.elapsed_s else 0.0,
        "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
        "server_errors": outcome.server_errors(),
        "lost": len(outcome.lost),
        "lost_examples": outcome.lost[:5],
        "latency_ms": outcome.percentiles(),
        "memory_before": [asdict(m) for m in before],
        "memory_after": [asdict(m) for m in after],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="emulator processes behind the front")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--out", type=Path, default=Path("bench/out/load.json"))
    args = parser.parse_args(argv)
    with serving(args.build_dir, workers=args.workers) as (server, front):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        model_dir = Path(front.emulators[0].function.opt_env()["ONNXLAMBDA_MODEL_DIR"])
        calls = calls_for(model_dir)
        warm = warm_up(base, calls, args.workers)
        pids = runtime_processes(front.emulators)
        before = memory(pids)
        outcome = run_load(
            base, calls, users=args.users, seconds=args.seconds, max_requests=args.max_requests
        )
        after = memory(runtime_processes(front.emulators))
    result = report(
        outcome,
        before,
        after,
        users=args.users,
        workers=args.workers,
        seconds=args.seconds,
        max_requests=args.max_requests,
        warm_up_lost=len(warm.lost),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["server_errors"] == 0 and result["lost"] == 0 and not warm.lost
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
