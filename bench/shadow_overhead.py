"""What a shadow challenger costs, inline or asynchronously: the measurements behind the choice.

    make bench-shadow [BENCH_ARGS="--iterations 2000 --warm 300 --cold 10"]

Three measurements, each a same-run comparison (ratios of medians and of p99s; nothing asserted):

1. inline, in process: the real API handler (functions/api/app.py) on /predict events, variants
   interleaved round-robin so they share the machine's noise:
       off          no challenger (capture at the template default, 10%)
       shadow10     challenger scores 10% of rows (nested with the 10% capture)
       shadow100    challenger scores every row (the worst case)
2. inline, under the Lambda emulator: the built API function with the build's own layers, shadow
   off vs a challenger layer scoring every row; REPORT durations (what Lambda bills) for warm
   requests, interleaved, and cold starts (Init Duration: loading a second model).
3. asynchronous, from the capture stream: what scoring a captured row later would take - a
   Firehose object (gzip JSON lines, as the capture writes them) decompressed, parsed, validated
   and run through the challenger and compared - per 1,000 rows, in process. Not counted: the
   separate function's invocations and cold starts, the S3 GETs, and the Firehose buffering delay
   (IntervalInSeconds 300 in template.yaml) before any row can be scored at all.

The challenger is the shipped penguins export with perturbed weights (same size and graph as the
champion, as a retrained version would be). Prints a table and writes bench/out/shadow.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inprocess import ROOT, set_environment

set_environment()

from bench.cost import PRICE_PER_GB_SECOND  # noqa: E402
from bench.measure import cold_starts, percentile, warm_latency  # noqa: E402
from bench.monitoring_overhead import event_with  # noqa: E402
from devtools.rie import BUILD_DIR, BuiltFunction  # noqa: E402
from functions.api import app  # noqa: E402
from functions.api.observe import observer  # noqa: E402
from onnxlambda.codecs import predict as predict_codec  # noqa: E402
from onnxlambda.monitoring.capture import Capturer, CaptureSettings  # noqa: E402
from onnxlambda.release.shadow import Challenger, ShadowSettings  # noqa: E402
from onnxlambda.serving.dataplane import answers  # noqa: E402
from onnxlambda.serving.service import get_service  # noqa: E402
from onnxlambda.serving.validation import Validator  # noqa: E402
from tests.conftest import FakeLambdaContext  # noqa: E402
from tests.unit.release.candidates import perturb_classifier, write_candidate  # noqa: E402

OUT = ROOT / "bench" / "out"
CAPTURE_RATE = 0.1  # the template default
VARIANTS = {"off": 0.0, "shadow10": 0.1, "shadow100": 1.0}
MEMORY_MB = 1024  # the template's function memory


def challenger_dir(root: Path) -> Path:
    return write_candidate(
        "penguins", root / "challenger", version="1.1.0", graph_edit=perturb_classifier(0.3, 1)
    )


def summary(values: list[float], base: list[float]) -> dict[str, float]:
    median, p99 = statistics.median(values), percentile(values, 99)
    b_median, b_p99 = statistics.median(base), percentile(base, 99)
    return {
        "median_ms": round(median, 4),
        "p99_ms": round(p99, 4),
        "median_ratio": round(median / b_median, 3),
        "p99_ratio": round(p99 / b_p99, 3),
        "added_median_us": round((median - b_median) * 1000, 1),
    }


# -- 1. inline, in process ----------------------------------------------------------------------


def in_process(model_dir: Path, rows: int, iterations: int) -> dict[str, dict[str, float]]:
    service = get_service()
    challenger = Challenger.load(ShadowSettings(sample_rate=1.0, challenger_dir=model_dir), service.manifest)
    assert challenger is not None
    capture = CaptureSettings(sample_rate=CAPTURE_RATE)
    capturer = Capturer(service.manifest, capture)
    observer.enabled, observer.capture_settings, observer._capturer = True, capture, capturer
    event, context = event_with(rows), FakeLambdaContext()
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def configure(rate: float) -> None:
        observer.shadow_settings = dataclasses.replace(observer.shadow_settings, sample_rate=rate)
        observer.challenger = challenger if rate > 0 else None

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for rate in VARIANTS.values():
            configure(rate)
            app.lambda_handler(event, context)
        for _ in range(iterations):
            for name, rate in VARIANTS.items():
                configure(rate)
                started = time.perf_counter()
                response = app.lambda_handler(event, context)
                timings[name].append((time.perf_counter() - started) * 1000)
                assert response["statusCode"] == 200
    configure(0.0)
    return {name: summary(values, timings["off"]) for name, values in timings.items()}


# -- 2. inline, under the emulator --------------------------------------------------------------


def as_layer(model_dir: Path, root: Path) -> Path:
    """The challenger laid out as the challenger layer is (challenger/model.onnx + manifest.json)."""
    layer = root / "challenger-layer"
    (layer / "challenger").mkdir(parents=True)
    for name in ("model.onnx", "manifest.json"):
        (layer / "challenger" / name).write_bytes((model_dir / name).read_bytes())
    return layer


def emulated(model_dir: Path, root: Path, warm: int, cold: int, build_dir: Path) -> dict[str, Any]:
    api = BuiltFunction.from_build("ApiFunction", build_dir)
    layer = as_layer(model_dir, root)
    on = dataclasses.replace(
        api,
        logical_id="ApiFunctionShadow",
        layer_dirs=[d for d in api.layer_dirs if not (d / "challenger").is_dir()] + [layer],
        environment={**api.environment, "ONNXLAMBDA_SHADOW_SAMPLE_RATE": "1"},
    )
    off = dataclasses.replace(api, environment={**api.environment, "ONNXLAMBDA_SHADOW_SAMPLE_RATE": "0"})
    fns = {"off": off, "shadow100": on}
    result, _ = warm_latency(fns, (1, 100), iterations=warm, warmup=10)
    out: dict[str, Any] = {"warm": {}}
    for rows in (1, 100):
        base = result.durations_ms["off"][rows]
        out["warm"][rows] = {name: summary(result.durations_ms[name][rows], base) for name in fns}
    if cold:
        samples = cold_starts(fns, cold)
        # The emulator's REPORT lines carry no Init Duration here: the client-side time from
        # starting the runtime to the first answer stands for the cold start (same run, interleaved).
        init = {name: [s.wall_ms for s in v] for name, v in samples.items()}
        out["cold_init"] = {
            name: {
                "median_ms": round(statistics.median(v), 1),
                "median_ratio": round(statistics.median(v) / statistics.median(init["off"]), 3),
            }
            for name, v in init.items()
        }
        out["peak_rss_kb"] = {name: max(s.peak_rss_kb for s in v) for name, v in samples.items()}
    return out


# -- 3. asynchronous, from the capture stream ---------------------------------------------------


def from_capture(model_dir: Path, rows: int = 1000, repeat: int = 7) -> dict[str, float]:
    """Per 1,000 captured rows: decompress + parse + validate + run + compare (best of `repeat`)."""
    service = get_service()
    lines: list[str] = []
    capturer = Capturer(service.manifest, CaptureSettings(sample_rate=1.0), write=lines.append)
    request = predict_codec.decode(json.loads(event_with(rows)["body"]))
    capturer.capture(service.dataplane.infer(request, request_id="bench"), request)
    blob = gzip.compress("".join(lines).encode())
    challenger = Challenger.load(ShadowSettings(sample_rate=1.0, challenger_dir=model_dir), service.manifest)
    assert challenger is not None
    validator = Validator(challenger.manifest, max_rows=rows)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        records = [json.loads(line) for line in gzip.decompress(blob).splitlines()]
        batch = validator.validate_partial([r["features"] for r in records])
        theirs = answers(challenger.manifest, challenger.runtime.run(batch.columns, batch.rows))
        agree = sum(r["prediction"]["label"] == t["label"] for r, t in zip(records, theirs, strict=True))
        best = min(best, (time.perf_counter() - started) * 1000)
        assert 0 <= agree <= rows
    return {
        "rows": rows,
        "ms_per_1000_rows": round(best * 1000 / rows, 3),
        "us_per_row": round(best * 1000 / rows, 2),
    }


def usd_per_million(added_ms: float, memory_mb: int = MEMORY_MB) -> float:
    """Lambda compute dollars per million requests for `added_ms` more billed duration."""
    return added_ms / 1000 * memory_mb / 1024 * PRICE_PER_GB_SECOND * 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iterations", type=int, default=2000, help="in-process requests per variant and size"
    )
    parser.add_argument("--warm", type=int, default=300, help="emulator warm requests per size and function")
    parser.add_argument("--cold", type=int, default=10, help="emulator cold starts per function (0: skip)")
    parser.add_argument("--no-emulator", action="store_true", help="in-process and capture-stream parts only")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = challenger_dir(Path(tmp))
        report["in_process"] = {rows: in_process(model_dir, rows, args.iterations) for rows in (1, 100)}
        report["from_capture"] = from_capture(model_dir)
        if not args.no_emulator:
            report["emulator"] = emulated(model_dir, Path(tmp), args.warm, args.cold, args.build_dir)
    report["load_average_at_end"] = os.getloadavg()[0]
    emulator = report.get("emulator", {})
    added = emulator.get("warm", {}).get(1, {}).get("shadow100", {}).get("added_median_us")
    if added is not None:
        report["usd_per_million_requests_shadow100_1_row"] = round(usd_per_million(max(added, 0) / 1000), 4)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "shadow.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))
    sys.stdout.flush()
    return 0


def render(report: dict[str, Any]) -> str:
    lines = [
        f"load average {report['load_average_at_start']:.1f} -> {report['load_average_at_end']:.1f}, "
        f"{report['cpus']} CPUs",
        "",
        "1. inline, in process (real handler, interleaved; capture 10%)",
    ]
    for rows, variants in report["in_process"].items():
        for name, s in variants.items():
            lines.append(
                f"  {rows:>4} row(s) {name:<10} median {s['median_ms']:.3f} ms ({s['median_ratio']:.3f}x)  "
                f"p99 {s['p99_ms']:.3f} ms ({s['p99_ratio']:.3f}x)  +{s['added_median_us']:.0f} us"
            )
    emulator = report.get("emulator")
    if emulator:
        lines.append("2. inline, built function under the Lambda emulator (REPORT Duration; interleaved)")
        for rows, variants in emulator["warm"].items():
            for name, s in variants.items():
                lines.append(
                    f"  {rows:>4} row(s) {name:<10} median {s['median_ms']:.3f} ms "
                    f"({s['median_ratio']:.3f}x)  p99 {s['p99_ms']:.3f} ms ({s['p99_ratio']:.3f}x)"
                )
        for name, s in emulator.get("cold_init", {}).items():
            lines.append(
                f"  cold start to first answer {name:<10} median {s['median_ms']:.1f} ms "
                f"({s['median_ratio']:.3f}x)"
            )
        for name, kb in emulator.get("peak_rss_kb", {}).items():
            lines.append(f"  peak RSS  {name:<10} {kb / 1024:.1f} MB")
    c = report["from_capture"]
    lines.append(
        f"3. from the capture stream: {c['ms_per_1000_rows']:.3f} ms per 1,000 captured rows "
        f"({c['us_per_row']:.2f} us/row), before invocation, S3 and buffering costs"
    )
    if "usd_per_million_requests_shadow100_1_row" in report:
        usd = report["usd_per_million_requests_shadow100_1_row"]
        lines.append(
            f"inline shadow of every 1-row request adds ${usd:.4f} of compute per million requests "
            f"at {MEMORY_MB} MB (median added duration)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
