"""The benchmark plan and the run: `python -m bench` (what `make bench` calls).

BENCH_QUICK=1 shrinks every count for a smoke run; BENCH_FUNCTIONS=api,minimal picks functions.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import functions as f
from bench.measure import cold_starts, warm_latency
from bench.report import RunResult, write
from devtools.rie import BUILD_DIR

ALL_FUNCTIONS = (f.API, f.MINIMAL, f.FASTAPI)


@dataclass(frozen=True, slots=True)
class Plan:
    cold_starts: int = 20
    warm_iterations: int = 300
    warmup: int = 20
    row_counts: tuple[int, ...] = (1, 100, 1000)
    rss_requests: int = 10_000
    rss_every: int = 500
    functions: tuple[str, ...] = ALL_FUNCTIONS
    quick: bool = False

    @classmethod
    def from_env(cls) -> Plan:
        names = tuple(n for n in os.environ.get("BENCH_FUNCTIONS", "").split(",") if n) or ALL_FUNCTIONS
        if os.environ.get("BENCH_QUICK", "") not in ("", "0"):
            return cls(
                cold_starts=3,
                warm_iterations=30,
                warmup=3,
                rss_requests=300,
                rss_every=50,
                functions=names,
                quick=True,
            )
        return cls(functions=names)


def run(plan: Plan, out_dir: Path = f.OUT, build_dir: Path = BUILD_DIR) -> dict[str, Path]:
    if not (build_dir / "template.yaml").is_file():
        raise SystemExit(f"no sam build output in {build_dir}: run `make build` first")
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    if f.FASTAPI in plan.functions:
        f.ensure_fastapi_layer()
    fns = f.functions(plan.functions, build_dir)
    print(f"cold starts: {plan.cold_starts} per function, interleaved", flush=True)
    cold = cold_starts(fns, plan.cold_starts)
    print(
        f"warm: {plan.warm_iterations} requests per size per function; leak check {plan.rss_requests}",
        flush=True,
    )
    warm, rss = warm_latency(
        fns,
        plan.row_counts,
        iterations=plan.warm_iterations,
        warmup=plan.warmup,
        rss_requests=plan.rss_requests,
        rss_every=plan.rss_every,
    )
    meta = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "model": _model_name(fns[plan.functions[0]].opt_env()["ONNXLAMBDA_MODEL_DIR"]),
        "quick": plan.quick,
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "elapsed_s": time.monotonic() - started,
        "plan": {k: getattr(plan, k) for k in Plan.__slots__},
    }
    sizes = {name: f.unzipped_size(fn) for name, fn in fns.items()}
    return write(RunResult(meta, cold, warm, rss, sizes), out_dir)


def _model_name(model_dir: str) -> str:
    import json

    return str(json.loads((Path(model_dir) / "manifest.json").read_text())["name"])


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=f.ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=f.ROOT, capture_output=True, text=True, check=False
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty.strip() else "")
