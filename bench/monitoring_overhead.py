"""Latency added to a request by per-request metrics and data capture, measured in process.

    PYTHONPATH=layers/core:. .venv/bin/python -m bench.monitoring_overhead [--iterations 2000]

Runs the real API handler (functions/api/app.py) on /predict events with four settings, the
variants interleaved round-robin so they share the machine's noise:

    off             ONNXLAMBDA_MONITORING_ENABLED behaviour off, capture off, Powertools metrics disabled
    metrics         per-request metrics (EMF line) on, capture off
    metrics+cap10   metrics and capture at a 10% sample rate (the template default)
    metrics+cap100  metrics and capture of every row (worst case)

stdout (EMF and capture lines) goes to /dev/null; on Lambda it is a pipe to the runtime, so the
numbers are a lower bound on the write cost but include all serialisation. Prints medians, p99
and the ratio of each to `off` (same run).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time
import timeit
from typing import Any

from bench.inprocess import ROOT, set_environment

set_environment()

from functions.api import app  # noqa: E402 - the environment first, as on Lambda
from functions.api.observe import observer  # noqa: E402
from onnxlambda.codecs import predict as predict_codec  # noqa: E402
from onnxlambda.monitoring.capture import Capturer, CaptureSettings  # noqa: E402
from onnxlambda.serving.service import get_service  # noqa: E402
from tests.conftest import FakeLambdaContext, golden_rows, load_event  # noqa: E402

VARIANTS: dict[str, tuple[bool, float]] = {
    "off": (False, 0.0),
    "metrics": (True, 0.0),
    "metrics+cap10": (True, 0.1),
    "metrics+cap100": (True, 1.0),
}


_capturers: dict[float, tuple[CaptureSettings, Capturer]] = {}


def configure(enabled: bool, rate: float) -> None:
    """Switch variant. Each rate keeps its own Capturer, built once as on Lambda (building one
    per call would time Random()'s urandom seeding, not the capture)."""
    observer.enabled = enabled
    if rate not in _capturers:
        settings = CaptureSettings(sample_rate=rate)
        _capturers[rate] = (settings, Capturer(get_service().manifest, settings))
    observer.capture_settings, observer._capturer = _capturers[rate]
    if enabled:
        os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
    else:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"


def event_with(rows: int) -> dict[str, Any]:
    golden = golden_rows(ROOT / "models" / "penguins")
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": [golden[i % len(golden)] for i in range(rows)]})
    return event


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(rows: int, iterations: int) -> dict[str, list[float]]:
    event, context = event_with(rows), FakeLambdaContext()
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for enabled, rate in VARIANTS.values():  # warm every path once
            configure(enabled, rate)
            app.lambda_handler(event, context)
            app.metrics.clear_metrics()
        for _ in range(iterations):
            for name, (enabled, rate) in VARIANTS.items():
                configure(enabled, rate)
                started = time.perf_counter()
                response = app.lambda_handler(event, context)
                timings[name].append((time.perf_counter() - started) * 1000)
                assert response["statusCode"] == 200
                if not enabled:  # a disabled flush keeps its metric set; drop it outside the timing
                    app.metrics.clear_metrics()
    return timings


def components(rows: int, repeat: int = 7, number: int = 300) -> dict[str, float]:
    """Best-of-`repeat` microseconds of each monitoring step alone on one outcome (less noisy
    than whole-handler timings on a shared machine)."""
    from functions.api.observe import metrics

    service = get_service()
    body = json.loads(event_with(rows)["body"])
    request = predict_codec.decode(body)
    inference = service.dataplane.infer(request, request_id="bench")
    out: dict[str, float] = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        configure(True, 0.0)

        def metrics_path() -> None:
            observer.invoked(service)
            observer.predicted(inference, request)
            metrics.flush_metrics()

        out["metrics (EMF)"] = min(timeit.repeat(metrics_path, number=number, repeat=repeat)) / number * 1e6
        for rate in (0.1, 1.0):
            capturer = Capturer(service.manifest, CaptureSettings(sample_rate=rate), write=sink.write)
            call = functools.partial(capturer.capture, inference, request)
            timing = timeit.repeat(call, number=number, repeat=repeat)
            out[f"capture {rate:.0%}"] = min(timing) / number * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args(argv)
    for rows in args.rows:
        timings = measure(rows, args.iterations)
        base_median = statistics.median(timings["off"])
        base_p99 = percentile(timings["off"], 0.99)
        print(f"\n/predict with {rows} row(s), {args.iterations} iterations per variant (interleaved)")
        header = ("variant", "median ms", "p99 ms", "median x off", "p99 x off", "+median us")
        print("{:<16}{:>11}{:>10}{:>14}{:>11}{:>12}".format(*header))
        for name, values in timings.items():
            median, p99 = statistics.median(values), percentile(values, 0.99)
            print(
                f"{name:<16}{median:>11.3f}{p99:>10.3f}{median / base_median:>14.3f}{p99 / base_p99:>11.3f}"
                f"{(median - base_median) * 1000:>12.0f}"
            )
    for rows in args.rows:
        parts = ", ".join(f"{k} {v:.0f} us" for k, v in components(rows).items())
        print(f"components alone, {rows} row(s), best of 7: {parts}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
