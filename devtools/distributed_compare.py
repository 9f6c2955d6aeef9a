"""The large-object path against the single path on one big file, under the emulator.

`make distributed-compare`.

TEST HARNESS: Step Functions is the local driver (devtools/sfnlocal.py); production runs on AWS.

    python -m devtools.distributed_compare --rows 2000000 --workers 2 --range-bytes 16777216

1. A CSV of --rows rows (devtools.largeobject.sample_csv: ids, quoted line breaks, bad rows at
   known places) is uploaded to moto's S3 (server mode, loopback).
2. The built BatchFunction scores it in one invocation (output under single/).
3. The built BatchFunction routes the same object to the large-object state machine; the local
   driver runs the definition with --workers emulated BatchRangeFunction environments.
4. The two scored files and errors files are compared byte for byte (sha256), the summaries field
   by field (all but when, where and which path).

Timings are wall clock on this machine, each step's own (plan, every range, merge) and end to end,
with the per-worker rate of the ranges (median over ranges): read them as ratios, not as Lambda's
numbers. Results go to bench/out/distributed_compare.json and stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from devtools import largeobject
from devtools.motoserver import function_env, moto_s3
from devtools.rie import BUILD_DIR, BuiltFunction, EmulatedFunction
from onnxlambda.contract.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "distributed_compare.json"
RUN_FIELDS = {"started_at", "duration_ms", "scored_by", "output"}


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in RUN_FIELDS}
    out["model"] = {k: v for k, v in summary["model"].items() if k != "function_version"}
    return out


def digest(s3: Any, bucket: str, key: str) -> tuple[str, int]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    h = hashlib.sha256()
    size = 0
    for piece in iter(lambda: body.read(1 << 20), b""):
        h.update(piece)
        size += len(piece)
    return h.hexdigest(), size


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one run, step by step
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2, help="emulated range function environments")
    parser.add_argument("--range-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--plain", action="store_true", help="no quoted line breaks in the ids")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    bucket = largeobject.bucket()
    report: dict[str, Any] = {
        "rows_generated": args.rows,
        "file": "plain" if args.plain else "a quoted line break every 97 rows",
        "workers": args.workers,
        "range_bytes": args.range_bytes,
    }
    with moto_s3(bucket, versioned=True) as (endpoint, s3), ExitStack() as stack:
        batch = BuiltFunction.from_build("BatchFunction", args.build_dir)
        model_dir = next(d / "model" for d in batch.layer_dirs if (d / "model").is_dir())
        manifest = load_manifest(model_dir)
        started = time.perf_counter()
        data = largeobject.sample_csv(manifest, args.rows, line_breaks=not args.plain)
        key = "incoming/compare/large.csv"
        answer = s3.put_object(Bucket=bucket, Key=key, Body=data)
        event = largeobject.put_event(key, len(data), answer["ETag"].strip('"'), answer.get("VersionId"))
        report["bytes"] = len(data)
        report["generate_seconds"] = round(time.perf_counter() - started, 1)
        del data
        print(f"{args.rows} rows, {report['bytes'] / 1e6:.1f} MB uploaded", file=sys.stderr)

        # -- the single path --------------------------------------------------------------------
        single_env = function_env(
            endpoint, ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES="0", ONNXLAMBDA_BATCH_OUTPUT_PREFIX="single/"
        )
        single = stack.enter_context(EmulatedFunction(batch, extra_env=single_env))
        single.invoke({"Records": []}, timeout=60)  # cold start outside the timing
        started = time.perf_counter()
        [one] = single.invoke(event, timeout=900)["results"]
        single_seconds = time.perf_counter() - started
        assert one["status"] == "succeeded", one
        reference = json.loads(s3.get_object(Bucket=bucket, Key=one["summary"])["Body"].read())
        report["single"] = {
            "seconds": round(single_seconds, 2),
            "rows_per_second": round(reference["rows"]["read"] / single_seconds),
            "mb_per_second": round(report["bytes"] / 1e6 / single_seconds, 2),
        }
        print(f"single path: {single_seconds:.1f} s", file=sys.stderr)

        # -- the distributed path -----------------------------------------------------------------
        machine = largeobject.state_machine(endpoint)
        router_env = function_env(
            endpoint, ONNXLAMBDA_BATCH_STATE_MACHINE_ARN=machine, ONNXLAMBDA_BATCH_DISTRIBUTED_MIN_BYTES="1"
        )
        router = stack.enter_context(EmulatedFunction(batch, extra_env=router_env))
        pool = largeobject.range_functions(
            stack, args.build_dir, endpoint, args.workers, ONNXLAMBDA_BATCH_RANGE_BYTES=str(args.range_bytes)
        )
        for fn in pool.functions:  # cold starts outside the timing
            fn.invoke({"action": "none"}, timeout=60)
        started = time.perf_counter()
        [routed] = router.invoke(event, timeout=300)["results"]
        assert routed["status"] == "started", routed
        given = largeobject.started_input(endpoint, routed["execution"]["arn"])
        sm, execution = largeobject.run(s3, pool, given, name="compare", concurrency=args.workers)
        wall = time.perf_counter() - started
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        mine = json.loads(s3.get_object(Bucket=bucket, Key=routed["summary"])["Body"].read())
        ranges = [c for c in pool.calls if c.action == "score_range"]
        rows_of = {c.index: c.answer["rows"] for c in ranges}
        plan = next(c for c in pool.calls if c.action == "plan")
        merge = next(c for c in pool.calls if c.action == "merge")
        per_range = [rows_of[c.index] / c.seconds for c in ranges]
        planned = _manifest(s3, bucket, plan.answer["manifest_key"])
        bytes_of = {r["index"]: r["end"] - r["start"] for r in planned}
        report["distributed"] = {
            "seconds_end_to_end": round(wall, 2),
            "ranges": len(ranges),
            "plan_seconds": round(plan.seconds, 2),
            "plan_mb_per_second": round(report["bytes"] / 1e6 / plan.seconds, 1),
            "range_seconds_median": round(statistics.median(c.seconds for c in ranges), 2),
            "worker_rows_per_second_median": round(statistics.median(per_range)),
            "worker_mb_per_second_median": round(
                statistics.median(bytes_of[c.index] / 1e6 / c.seconds for c in ranges), 2
            ),
            "merge_seconds": round(merge.seconds, 2),
            "map_run": {"total": sm.map_runs[0].total, "failed": sm.map_runs[0].failed},
        }
        print(f"distributed path: {wall:.1f} s end to end", file=sys.stderr)

        # -- the same output? ---------------------------------------------------------------------
        same = {}
        for kind in ("scored", "errors"):
            a = digest(s3, bucket, reference["output"][kind])
            b = digest(s3, bucket, mine["output"][kind])
            same[kind] = {"identical": a == b, "sha256": a[0], "bytes": a[1]}
        same["summary_counts"] = {"identical": comparable(reference) == comparable(mine)}
        report["same"] = same
        report["summary_rows"] = mine["rows"]
        report["rejected_by_code"] = mine["rejected_by_code"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(v["identical"] for v in report["same"].values()) else 1


def _manifest(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    ranges: list[dict[str, Any]] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return ranges


if __name__ == "__main__":
    sys.exit(main())
