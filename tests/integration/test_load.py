"""Short bounded load through the local HTTP front (2 emulators): nothing lost, no 5xx, flat memory.

`make load` runs the longer form (devtools/load.py). Timings are reported, never asserted: the
machine is shared. The memory bound is a ratio against the same run's post-warm-up reading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.load import calls_for, memory, report, run_load, runtime_processes, warm_up
from devtools.serve import serving
from tests.conftest import ROOT
from tests.integration.fronts import roomy_init

USERS, WORKERS, SECONDS, MAX_REQUESTS = 4, 2, 20.0, 3000


def test_bounded_load_loses_nothing_and_memory_stays_flat(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the local HTTP front over two emulated execution environments, warmed up
    roomy_init(monkeypatch)
    with serving(build_dir, workers=WORKERS) as (server, front):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        calls = calls_for(Path(front.emulators[0].function.opt_env()["ONNXLAMBDA_MODEL_DIR"]))
        warm = warm_up(base, calls, WORKERS)
        pids = runtime_processes(front.emulators)
        before = memory(pids)
        # WHEN 4 users send a fixed mix (predict 1 and 10 rows, health, one refusal) for at most
        # 20 s or 3,000 requests
        outcome = run_load(base, calls, users=USERS, seconds=SECONDS, max_requests=MAX_REQUESTS)
        after = memory(runtime_processes(front.emulators))
    result = report(
        outcome, before, after, users=USERS, workers=WORKERS, seconds=SECONDS, max_requests=MAX_REQUESTS
    )
    out = ROOT / "bench" / "out" / "load-short.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("requests", "throughput_rps", "statuses", "latency_ms")}))
    # THEN every request got its documented answer: no 5xx, no lost rows, no transport errors
    assert warm.lost == []
    assert outcome.lost == []
    assert outcome.server_errors() == 0
    assert set(outcome.statuses) == {200, 422}
    assert outcome.requests > 100
    # AND the same runtime processes served it all (none crashed and restarted)
    assert len(pids) == WORKERS
    assert [m.pid for m in after] == pids
    # AND their resident memory stayed flat: under 10% (+4 MiB slack) growth over the run
    for b, a in zip(before, after, strict=True):
        assert a.rss_kb <= b.rss_kb * 1.10 + 4096, (b, a)
