"""Batch scoring benchmark (not a test): rows/s end to end against two same-run baselines, and
peak memory for 1x / 10x / 100x file sizes.

    make bench-batch                       # base 10,000 rows: files of 10k, 100k, 1M rows
    .venv/bin/python -m bench.batch_throughput --base 20000 --repeat 5

End to end = the `sam build` output of BatchFunction under the Lambda Runtime Interface Emulator,
reading from and writing to moto's S3 in server mode on loopback; time from the REPORT line's
Duration; peak memory = VmHWM of the awslambdaric process, reset before each invocation.
Baselines, in this process on the same rows:
  bare onnxruntime  the tensors already in memory, only session.run in chunks of the same size;
  floor             parse the same CSV bytes from memory (csv module) into tensors and run the
                    model, in the same chunks: no S3, no validation, no output.
Also shown: "core, in memory" = the real readers + validator + output rendering, no S3/runtime.
Machines are shared and noisy: compare ratios within one run, not absolute numbers across runs.
Each round uploads the file under a new key (a re-sent event for the same object would be
skipped as already scored), invokes the function, then runs the baselines right after it; the
table shows medians over the rounds, and e2e / floor is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import boto3
import numpy as np
from moto.server import ThreadedMotoServer

from devtools.batchdata import csv_stream
from devtools.procmem import peak_rss_mb, reset_peak, runtime_pid
from devtools.rie import BuiltFunction, EmulatedFunction, free_port
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.files import byte_chunks, text_lines
from onnxlambda.batch.readers import CsvReader
from onnxlambda.batch.scorer import Scorer
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from tests.conftest import load_event

CHUNK = BatchConfig().chunk_rows


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Seconds of the fastest of `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bare_ort(runtime: ModelRuntime, data: bytes) -> Callable[[], object]:
    """Tensors prepared up front (not timed); the timed part is session.run per chunk."""
    tensors = list(_parse_chunks(runtime, data))
    names = [o.name for o in runtime.session.get_outputs()]
    return lambda: [runtime.session.run(names, t) for t in tensors]


def _parse_chunks(runtime: ModelRuntime, data: bytes) -> Any:
    manifest = runtime.manifest
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    header = next(reader)
    idx = [header.index(f.name) for f in manifest.features]
    while True:
        records = [r for _, r in zip(range(CHUNK), reader, strict=False)]
        if not records:
            return
        cols = list(zip(*records, strict=True))
        columns = {}
        for f, i in zip(manifest.features, idx, strict=True):
            if f.is_categorical:
                columns[f.name] = np.array(cols[i], dtype=object)
            else:
                columns[f.name] = np.array([float(c) if c else np.nan for c in cols[i]], dtype=np.float32)
        yield runtime.feeds(columns, len(records))


def floor(runtime: ModelRuntime, data: bytes) -> Callable[[], object]:
    names = [o.name for o in runtime.session.get_outputs()]
    return lambda: [runtime.session.run(names, t) for t in _parse_chunks(runtime, data)]


class _Discard:
    def write(self, data: bytes) -> None:
        pass


def core_in_memory(runtime: ModelRuntime, data: bytes) -> Callable[[], object]:
    validator = Validator(runtime.manifest, max_rows=1)

    def run() -> None:
        scorer = Scorer(runtime, validator, "csv", "id")
        reader = CsvReader(runtime.manifest, chunk_rows=CHUNK, id_column="id")
        sink: Any = _Discard()
        for chunk in reader.chunks(text_lines(byte_chunks(io.BytesIO(data)))):
            scorer.score(chunk, sink, sink)
        scorer.drift()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=int, default=10_000, help="rows in the 1x file")
    parser.add_argument("--repeat", type=int, default=5, help="1x and 10x: median of N rounds")
    parser.add_argument("--repeat-large", type=int, default=1, help="100x: rounds (each ~40 s at base 10k)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    function = BuiltFunction.from_build("BatchFunction")
    model_dir = next(d / "model" for d in function.layer_dirs if (d / "model").is_dir())
    runtime = ModelRuntime.load(model_dir)
    manifest = runtime.manifest

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    event_template = load_event("s3_put_csv")
    bucket = event_template["Records"][0]["s3"]["bucket"]["name"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )
    s3.create_bucket(Bucket=bucket)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
    }
    results: list[dict[str, Any]] = []
    try:
        with EmulatedFunction(function, extra_env=env) as fn:
            # warm the execution environment so no size pays the cold start
            warm = b"".join(csv_stream(manifest, 100, seed=1))
            s3.put_object(Bucket=bucket, Key="incoming/warm.csv", Body=warm)
            fn.invoke(_event(event_template, "incoming/warm.csv"), timeout=120)
            pid = runtime_pid(fn)
            for factor in (1, 10, 100):
                n = args.base * factor
                data = b"".join(csv_stream(manifest, n, seed=factor))

                def fresh(round_: int, n: int = n, data: bytes = data) -> dict[str, Any]:
                    """The file under a key of its own: a new object, so it is scored, not skipped."""
                    key = f"incoming/bench/{n}-{round_}.csv"
                    etag = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
                    return _event(event_template, key, etag)

                # Interleave end to end and the baselines, round by round, so a burst of load
                # from other processes on the machine hits them alike.
                rounds = args.repeat if factor <= 10 else args.repeat_large
                best, peak = _measure(fn, pid, fresh, runtime, data, n, rounds)
                row: dict[str, Any] = {
                    "factor": factor,
                    "rows": n,
                    "mb": round(len(data) / 1e6, 1),
                    "peak_rss_mb": round(peak, 1),
                    "rounds": rounds,
                    "e2e_over_floor": round(best.pop("ratio"), 3),
                    **{f"{name}_rows_s": n / seconds for name, seconds in best.items()},
                }
                results.append(row)
                del data
                print(json.dumps(row), flush=True)
    finally:
        server.stop()
    _table(results)


def _measure(  # noqa: PLR0917 - one call site
    fn: EmulatedFunction,
    pid: int,
    fresh: Callable[[int], dict[str, Any]],
    runtime: ModelRuntime,
    data: bytes,
    n: int,
    rounds: int,
) -> tuple[dict[str, float], float]:
    """Median seconds per method over `rounds` interleaved runs (and, as "ratio", the median of
    the per-round e2e / floor rates), and the peak RSS of the runtime."""
    runs: dict[str, list[float]] = {}
    peak = 0.0
    for round_ in range(rounds):
        event = fresh(round_)
        reset_peak(pid)
        before = len(fn.reports)
        answer = fn.invoke(event, timeout=900)
        report = fn.wait_for_report(before + 1, timeout=30)
        peak = max(peak, peak_rss_mb(pid))
        [result] = answer["results"]
        assert result["status"] == "succeeded", answer
        assert result["rows"]["scored"] == n, answer
        timings = {"e2e": report.duration_ms / 1000.0}
        timings["floor"] = best_of(1, floor(runtime, data))
        timings["core"] = best_of(1, core_in_memory(runtime, data))
        timings["bare_ort"] = best_of(1, bare_ort(runtime, data))
        timings["ratio"] = timings["floor"] / timings["e2e"]  # rates: (n / e2e) / (n / floor)
        for name, seconds in timings.items():
            runs.setdefault(name, []).append(seconds)
    return {name: statistics.median(values) for name, values in runs.items()}, peak


def _event(template: dict[str, Any], key: str, etag: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["Records"][0]["s3"]["object"]["key"] = key
    if etag:
        event["Records"][0]["s3"]["object"]["eTag"] = etag
    return event


def _table(results: list[dict[str, Any]]) -> None:
    def k(x: float | None) -> str:
        return "-" if x is None else f"{x / 1000:,.1f}k"

    print()
    print(
        "| file | rows | MB | rounds | end to end rows/s | core in memory | floor | bare onnxruntime "
        "| e2e / floor | peak RSS MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['factor']}x | {r['rows']:,} | {r['mb']} | {r['rounds']} | {k(r['e2e_rows_s'])} "
            f"| {k(r.get('core_rows_s'))} | {k(r.get('floor_rows_s'))} | {k(r.get('bare_ort_rows_s'))} "
            f"| {r['e2e_over_floor']:.2f} | {r['peak_rss_mb']} |"
        )
    e2e = statistics.median(r["e2e_rows_s"] for r in results)
    budget_s = 900 - BatchConfig().time_margin_ms / 1000 - 10  # minus the margin and a cold start
    bytes_per_row = results[-1]["mb"] * 1e6 / results[-1]["rows"]
    rows = e2e * budget_s
    print(
        f"\nmedian end to end {e2e:,.0f} rows/s -> about {rows / 1e6:,.1f} M rows "
        f"(~{rows * bytes_per_row / 1e9:,.1f} GB of this CSV) in one {budget_s:.0f} s invocation"
    )


if __name__ == "__main__":
    main()
