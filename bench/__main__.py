"""`python -m bench`: run the benchmark and write bench/out/report.md, results.json, bench.png."""

import os
from pathlib import Path

from bench.functions import OUT
from bench.run import Plan, run
from devtools.rie import BUILD_DIR

if __name__ == "__main__":
    # BENCH_BUILD_DIR / BENCH_OUT: measure a saved build (e.g. a before/after pair) elsewhere.
    paths = run(
        Plan.from_env(),
        out_dir=Path(os.environ.get("BENCH_OUT") or OUT),
        build_dir=Path(os.environ.get("BENCH_BUILD_DIR") or BUILD_DIR),
    )
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
