"""Before/after in one run: the API function of another `sam build` output against this one's.

    make bench-compare BEFORE=/path/to/other/.aws-sam/build [BENCH_ARGS="--cold 20 --warm 250"]

Copy `.aws-sam/build` aside before a change (`cp -a .aws-sam/build /tmp/before-build`), rebuild
after it, and compare: both API functions and the minimal handler (this build's layers) are
measured interleaved, round-robin, as `make bench` does, so the noise of a shared machine falls on
all three alike. Prints medians, ratios to the minimal handler and the paired after/before ratio
of the cold starts (each round starts both functions back to back). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import replace
from pathlib import Path

from bench import functions as f
from bench.measure import cold_starts, percentile, warm_latency
from devtools.rie import BUILD_DIR, BuiltFunction

BEFORE, AFTER, MINIMAL = "before", "after", "minimal"


def compared(before_build: Path, after_build: Path = BUILD_DIR) -> dict[str, BuiltFunction]:
    before = replace(f.api_function(before_build), logical_id="ApiFunctionBefore")
    return {
        BEFORE: before,
        AFTER: f.api_function(after_build),
        MINIMAL: f.baseline_function(f.MINIMAL, after_build),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="the other sam build output directory")
    parser.add_argument("--cold", type=int, default=20, help="cold starts per function")
    parser.add_argument("--warm", type=int, default=250, help="warm requests per size per function")
    args = parser.parse_args(argv)
    if not (args.before / "template.yaml").is_file():
        raise SystemExit(f"no sam build output in {args.before}")
    fns = compared(args.before)
    load = os.getloadavg()[0]
    cold = cold_starts(fns, args.cold)
    medians = {name: statistics.median(s.cold_ms for s in samples) for name, samples in cold.items()}
    print(f"load average at start {load:.1f}; {args.cold} cold starts, {args.warm} warm requests per size")
    for name in fns:
        print(
            f"cold start {name:8s} median {medians[name]:7.1f} ms",
            f"{medians[name] / medians[MINIMAL]:.2f}x minimal",
        )
    paired = [a.cold_ms / b.cold_ms for a, b in zip(cold[AFTER], cold[BEFORE], strict=True)]
    print(f"cold start after/before, paired by round: median {statistics.median(paired):.3f}")
    warm, _ = warm_latency(fns, (1, 100, 1000), iterations=args.warm, warmup=10)
    for rows in (1, 100, 1000):
        p50 = {name: percentile(warm.durations_ms[name][rows], 50) for name in fns}
        p99 = {name: percentile(warm.durations_ms[name][rows], 99) for name in fns}
        cells = "  ".join(f"{n} {p50[n]:.2f} ms ({p50[n] / p50[MINIMAL]:.2f}x)" for n in fns)
        print(f"warm {rows:>5} rows p50  {cells}  | p99 " + " ".join(f"{n} {p99[n]:.2f}" for n in fns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
