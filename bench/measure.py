"""Measurements under the emulator: cold starts, warm durations, runtime-process memory.

Every figure comes from the emulator's REPORT lines (Duration, Init Duration) or from /proc of the
awslambdaric process the emulator starts; the emulator's "Max Memory Used" is not a real reading.
Functions are measured interleaved (round-robin, rotating order) so the noise of a shared machine
falls on all of them alike, and only ratios within one run are compared.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from devtools.rie import BuiltFunction, EmulatedFunction
from onnxlambda import settings
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from onnxlambda.settings import ort_threads

EVENT_TEMPLATE = Path(__file__).resolve().parent.parent / "events" / "api_predict_one.json"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def rows_for(model_dir: Path, n: int) -> list[dict[str, Any]]:
    """n request rows cycled from the model's golden set (rows without nulls: the baselines do
    not handle them, and a request every function can answer keeps the comparison fair)."""
    cases = json.loads((model_dir / "golden.json").read_text())["cases"]
    pool = [c["instance"] for c in cases if None not in c["instance"].values()]
    return [dict(pool[i % len(pool)]) for i in range(n)]


def predict_event(rows: list[dict[str, Any]], request_id: str = "bench") -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT_TEMPLATE.read_text())
    event = copy.deepcopy(event)
    event["body"] = json.dumps({"instances": rows})
    event["requestContext"]["requestId"] = request_id
    return event


# -- the runtime process ------------------------------------------------------------------------


def runtime_pid(emulator: EmulatedFunction) -> int | None:
    """The awslambdaric process the emulator started (a descendant of the emulator process)."""
    proc = emulator._proc
    if proc is None:
        return None
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    family = {proc.pid}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in family} - family
        family |= children
        grew = bool(children)
    for pid in sorted(family - {proc.pid}):
        try:
            if b"awslambdaric" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def memory_kb(pid: int | None) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB; empty if it is gone."""
    if pid is None:
        return {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    wanted = {"VmRSS", "VmHWM"}
    return {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines) if k in wanted}


# -- cold starts --------------------------------------------------------------------------------


@dataclass
class ColdSample:
    init_ms: float
    duration_ms: float
    wall_ms: float  # client side: from starting the emulator to the first answer
    peak_rss_kb: int

    @property
    def cold_ms(self) -> float:
        return self.init_ms + self.duration_ms


def cold_starts(fns: dict[str, BuiltFunction], samples: int) -> dict[str, list[ColdSample]]:
    """`samples` fresh emulator processes per function, interleaved: one fresh start each per round."""
    event = predict_event(rows_for(_model_dir(fns), 1), "cold")
    out: dict[str, list[ColdSample]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(samples):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            started = time.perf_counter()
            with EmulatedFunction(fns[name]) as emulator:
                answer = emulator.invoke(event)
                wall = (time.perf_counter() - started) * 1000
                _check(name, answer)
                report = emulator.wait_for_report(1)
                peak = memory_kb(runtime_pid(emulator)).get("VmHWM", 0)
            out[name].append(ColdSample(report.init_ms or 0.0, report.duration_ms, wall, peak))
    return out


# -- warm requests ------------------------------------------------------------------------------


@dataclass
class WarmResult:
    durations_ms: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    floor_ms: dict[int, list[float]] = field(default_factory=dict)
    peak_rss_kb: dict[str, int] = field(default_factory=dict)


@dataclass
class RssTrace:
    function: str
    requests: list[int]
    rss_kb: list[int]
    peak_kb: int


class _Warm:
    """One long-lived emulator per function; invoke() returns the handler Duration of that call."""

    def __init__(self, emulator: EmulatedFunction) -> None:
        self.emulator = emulator
        self.calls = 0

    def invoke(self, event: dict[str, Any], name: str) -> float:
        _check(name, self.emulator.invoke(event))
        self.calls += 1
        return self.emulator.wait_for_report(self.calls).duration_ms


def warm_latency(
    fns: dict[str, BuiltFunction],
    row_counts: tuple[int, ...],
    *,
    iterations: int,
    warmup: int,
    rss_requests: int = 0,
    rss_every: int = 500,
) -> tuple[WarmResult, RssTrace | None]:
    model_dir = _model_dir(fns)
    result = WarmResult()
    trace: RssTrace | None = None
    with ExitStack() as stack:
        warm = {name: _Warm(stack.enter_context(EmulatedFunction(fn))) for name, fn in fns.items()}
        names = list(fns)
        for n in row_counts:
            event = predict_event(rows_for(model_dir, n), f"warm-{n}")
            for name in names:
                for _ in range(warmup):
                    warm[name].invoke(event, name)
            for i in range(iterations):
                order = names[i % len(names) :] + names[: i % len(names)]
                for name in order:
                    ms = warm[name].invoke(event, name)
                    result.durations_ms.setdefault(name, {}).setdefault(n, []).append(ms)
        for name in names:
            result.peak_rss_kb[name] = memory_kb(runtime_pid(warm[name].emulator)).get("VmHWM", 0)
        if rss_requests and names:
            leak = "api" if "api" in warm else names[0]  # the function under test, when it runs
            trace = rss_over_requests(warm[leak], leak, model_dir, rss_requests, rss_every)
    result.floor_ms = floor(fns[next(iter(fns))], row_counts, iterations, warmup)
    return result, trace


def rss_over_requests(warm: _Warm, name: str, model_dir: Path, requests: int, every: int) -> RssTrace:
    """RSS of the runtime process sampled every `every` single-row requests: a leak shows as a slope."""
    event = predict_event(rows_for(model_dir, 1), "rss")
    pid = runtime_pid(warm.emulator)
    trace = RssTrace(name, [0], [memory_kb(pid).get("VmRSS", 0)], 0)
    for i in range(1, requests + 1):
        warm.invoke(event, name)
        if i % every == 0 or i == requests:
            trace.requests.append(i)
            trace.rss_kb.append(memory_kb(pid).get("VmRSS", 0))
    trace.peak_kb = memory_kb(pid).get("VmHWM", 0)
    return trace


def floor(
    fn: BuiltFunction, row_counts: tuple[int, ...], iterations: int, warmup: int
) -> dict[int, list[float]]:
    """Bare onnxruntime `session.run` on the same rows, tensors already in memory: the floor."""
    model_dir = _model_dir({"f": fn})
    threads = ort_threads(
        settings.get("ONNXLAMBDA_ORT_INTRA_OP_THREADS", fn.environment), fn.memory_mb
    )  # as the function
    runtime = ModelRuntime.load(model_dir, intra_op_threads=threads)
    session: ort.InferenceSession = runtime.session
    validator = Validator(runtime.manifest, max_rows=max(row_counts))
    names = [o.name for o in session.get_outputs()]
    out: dict[int, list[float]] = {}
    for n in row_counts:
        batch = validator.validate(rows_for(model_dir, n))
        tensors = runtime.feeds(batch.columns, batch.rows)
        for _ in range(warmup):
            session.run(names, tensors)
        times = []
        for _ in range(iterations):
            started = time.perf_counter()
            session.run(names, tensors)
            times.append((time.perf_counter() - started) * 1000)
        out[n] = times
    return out


def _model_dir(fns: dict[str, BuiltFunction]) -> Path:
    return Path(next(iter(fns.values())).opt_env()["ONNXLAMBDA_MODEL_DIR"])


def _check(name: str, answer: Any) -> None:
    if not isinstance(answer, dict) or answer.get("statusCode") != 200:
        raise RuntimeError(f"{name} did not answer 200: {str(answer)[:500]}")


def iter_durations(result: WarmResult) -> Iterator[tuple[str, int, list[float]]]:
    for name, by_rows in result.durations_ms.items():
        for n, values in by_rows.items():
            yield name, n, values
