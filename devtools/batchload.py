"""Bounded batch load: many files uploaded at once, scored by the built BatchFunction under the
emulator, every row accounted for. Loopback only (moto's S3 in server mode on 127.0.0.1).

    python -m devtools.batchload --files 120 --min-rows 2000 --max-rows 20000 --workers 2   # make load-batch

Files alternate CSV and JSON Lines, with sizes drawn between --min-rows and --max-rows and about
1% of rows made invalid on purpose (an unknown island or a non-numeric body mass), at known row
numbers. All files are uploaded concurrently, then one S3 put event per file is sent to
`--workers` emulated execution environments (each single-invoke, as Lambda's are). Afterwards
every output is read back: the scored file's and the errors file's row numbers must together be
exactly 1..n for each input, disjoint, with the rejected ones exactly the planted ones, and each
summary's counts must match what was read back. Memory (VmRSS, VmHWM) of each runtime process is
read after its first file and at the end.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import numpy as np

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from devtools.motoserver import function_env, moto_s3
from devtools.procmem import peak_rss_mb, rss_mb, runtime_pid
from devtools.rie import BUILD_DIR, BuiltFunction, EmulatedFunction
from onnxlambda.contract.manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
EVENT: dict[str, Any] = json.loads((ROOT / "events" / "s3_put_csv.json").read_text())
BUCKET: str = EVENT["Records"][0]["s3"]["bucket"]["name"]


@dataclass(frozen=True, slots=True)
class InputFile:
    key: str
    data: bytes
    rows: int
    bad: frozenset[int]  # row numbers (1-based) made invalid on purpose


@dataclass(slots=True)
class FileOutcome:
    key: str
    rows: int
    scored: int
    rejected: int
    lost: int  # input rows in neither file
    duplicated: int  # rows in both files, or twice in one
    wrong_rejections: int  # rejected rows that were valid, or invalid rows that were scored
    summary_matches: bool
    status: str


@dataclass(slots=True)
class LoadResult:
    files: int
    workers: int
    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong_rejections: int = 0
    summary_mismatches: int = 0
    failed_files: int = 0
    bytes_in: int = 0
    upload_s: float = 0.0
    score_s: float = 0.0
    rows_per_s: float = 0.0
    rss_mb: list[dict[str, float]] = field(default_factory=list)  # per runtime process
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.rows_in == self.scored + self.rejected
            and self.lost == self.duplicated == self.wrong_rejections == 0
            and self.summary_mismatches == self.failed_files == 0
        )

    def line(self) -> str:
        mem = "; ".join(
            f"pid {m['pid']:.0f}: VmRSS {m['rss_first_mb']:.1f} -> {m['rss_end_mb']:.1f} MB, "
            f"VmHWM {m['hwm_end_mb']:.1f}"
            for m in self.rss_mb
        )
        return (
            f"{self.files} files ({self.bytes_in / 1e6:.1f} MB), {self.workers} environments: rows in "
            f"{self.rows_in} = scored {self.scored} + rejected {self.rejected}; lost {self.lost}, "
            f"duplicated {self.duplicated}, wrong rejections {self.wrong_rejections}, summary mismatches "
            f"{self.summary_mismatches}, failed files {self.failed_files}; upload {self.upload_s:.1f} s, "
            f"scoring {self.score_s:.1f} s ({self.rows_per_s:,.0f} rows/s); {mem}"
        )


def make_files(
    manifest: Manifest, *, files: int, min_rows: int, max_rows: int, prefix: str, seed: int = 0
) -> list[InputFile]:
    """Alternate CSV / JSONL files with ~1% of rows broken at known row numbers."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(files):
        n = int(rng.integers(min_rows, max_rows + 1))
        rows: list[dict[str, Any]] = sample_rows(manifest, n, seed=seed * 100_003 + i)
        bad = {int(r) + 1 for r in rng.choice(n, size=max(1, n // 100), replace=False)}
        for j, number in enumerate(sorted(bad)):
            if j % 2:
                rows[number - 1]["island"] = "Atlantis"  # unknown_category
            else:
                rows[number - 1]["body_mass_g"] = "heavy"  # wrong_type
        if i % 2:
            key, data = f"{prefix}file-{i:04d}.jsonl", jsonl_bytes(rows)
        else:
            key, data = f"{prefix}file-{i:04d}.csv", csv_bytes(rows, manifest.feature_names)
        out.append(InputFile(key, data, n, frozenset(bad)))
    return out


def put_event(key: str, etag: str, size: int, version_id: str | None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    obj = event["Records"][0]["s3"]["object"]
    obj.update(key=quote_plus(key, safe="/"), size=size, eTag=etag.strip('"'))
    obj["versionId"] = version_id
    return event


def emulator_env(endpoint: str) -> dict[str, str]:
    return function_env(endpoint, ONNXLAMBDA_BATCH_PART_BYTES=str(5 * 1024 * 1024))


def _rows_of_scored(data: bytes, key: str) -> list[int]:
    if key.endswith(".csv"):
        return [int(r["row"]) for r in csv.DictReader(io.StringIO(data.decode("utf-8")))]
    return [int(json.loads(line)["row"]) for line in data.splitlines() if line.strip()]


def account(s3: Any, f: InputFile, answer: dict[str, Any]) -> FileOutcome:
    """Read one file's outputs back and check every input row is in exactly one of them."""
    if "errorMessage" in answer:
        return FileOutcome(f.key, f.rows, 0, 0, f.rows, 0, 0, False, "error")
    [result] = answer["results"]
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=result["summary"])["Body"].read())
    if summary["status"] != "succeeded":
        return FileOutcome(f.key, f.rows, 0, 0, f.rows, 0, 0, False, summary["status"])
    scored_rows = _rows_of_scored(
        s3.get_object(Bucket=BUCKET, Key=summary["output"]["scored"])["Body"].read(), f.key
    )
    errors = s3.get_object(Bucket=BUCKET, Key=summary["output"]["errors"])["Body"].read()
    error_rows = [int(json.loads(line)["row"]) for line in errors.splitlines() if line.strip()]
    seen = set(scored_rows) | set(error_rows)
    everything = set(range(1, f.rows + 1))
    duplicated = len(scored_rows) + len(error_rows) - len(seen) + len(seen - everything)
    counts = summary["rows"]
    return FileOutcome(
        key=f.key,
        rows=f.rows,
        scored=len(scored_rows),
        rejected=len(error_rows),
        lost=len(everything - seen),
        duplicated=duplicated,
        wrong_rejections=len(set(error_rows) ^ f.bad),
        summary_matches=counts == {"read": f.rows, "scored": len(scored_rows), "rejected": len(error_rows)},
        status=summary["status"],
    )


def run(
    function: BuiltFunction,
    endpoint: str,
    s3: Any,
    manifest: Manifest,
    *,
    files: int,
    min_rows: int,
    max_rows: int,
    workers: int,
    prefix: str = "incoming/load/",
    seed: int = 0,
) -> LoadResult:
    inputs = make_files(manifest, files=files, min_rows=min_rows, max_rows=max_rows, prefix=prefix, seed=seed)
    result = LoadResult(files=files, workers=workers, bytes_in=sum(len(f.data) for f in inputs))
    # All files at once: concurrent uploads, as a producer dropping a day's files would.
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        puts = list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=f.key, Body=f.data), inputs))
    result.upload_s = time.perf_counter() - started
    events = [
        (f, put_event(f.key, p["ETag"], len(f.data), p.get("VersionId")))
        for f, p in zip(inputs, puts, strict=True)
    ]
    todo: queue.Queue[tuple[InputFile, dict[str, Any]]] = queue.Queue()
    for item in events:
        todo.put(item)
    answers: dict[str, dict[str, Any]] = {}
    first_rss: dict[int, float] = {}

    def worker(fn: EmulatedFunction) -> None:
        while True:
            try:
                f, event = todo.get_nowait()
            except queue.Empty:
                return
            answers[f.key] = fn.invoke(event, timeout=600)
            pid = runtime_pid(fn)
            first_rss.setdefault(pid, rss_mb(pid))

    with ExitStack() as stack:
        emulators = [
            stack.enter_context(EmulatedFunction(function, extra_env=emulator_env(endpoint)))
            for _ in range(workers)
        ]
        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(fn,)) for fn in emulators]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result.score_s = time.perf_counter() - started
        for fn in emulators:
            pid = runtime_pid(fn)
            result.rss_mb.append(
                {
                    "pid": float(pid),
                    "rss_first_mb": first_rss.get(pid, 0.0),
                    "rss_end_mb": rss_mb(pid),
                    "hwm_end_mb": peak_rss_mb(pid),
                }
            )
    for f in inputs:
        outcome = account(s3, f, answers.get(f.key, {"errorMessage": "never invoked"}))
        result.outcomes.append(outcome)
        result.rows_in += f.rows
        result.scored += outcome.scored
        result.rejected += outcome.rejected
        result.lost += outcome.lost
        result.duplicated += outcome.duplicated
        result.wrong_rejections += outcome.wrong_rejections
        result.summary_mismatches += not outcome.summary_matches
        result.failed_files += outcome.status != "succeeded"
    result.rows_per_s = result.rows_in / result.score_s if result.score_s else 0.0
    return result


def main(argv: list[str] | None = None) -> int:

    from onnxlambda.contract.manifest import load_manifest

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--min-rows", type=int, default=2_000)
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "load-batch.json")
    args = parser.parse_args(argv)
    if not 1 <= args.files <= 1000 or not 1 <= args.workers <= 4 or args.max_rows > 200_000:
        parser.error("bounded on purpose: 1-1000 files, 1-4 workers, at most 200,000 rows a file")
    with moto_s3(BUCKET, versioned=True) as (endpoint, s3):
        function = BuiltFunction.from_build("BatchFunction", BUILD_DIR)
        model_dir = next(d / "model" for d in function.layer_dirs if (d / "model").is_dir())
        result = run(
            function,
            endpoint,
            s3,
            load_manifest(model_dir),
            files=args.files,
            min_rows=args.min_rows,
            max_rows=args.max_rows,
            workers=args.workers,
            seed=args.seed,
        )
    print(result.line())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = asdict(result)
    report["outcomes"] = [o for o in report["outcomes"] if o["status"] != "succeeded" or o["lost"]]
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["InputFile", "LoadResult", "account", "make_files", "run"]
