"""Turn one run's measurements into bench/out/report.md, results.json and bench.png."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.cost import FULL_VCPU_MB, MEMORY_SIZES_MB, PRICE_PER_GB_SECOND, PRICE_PER_REQUEST, cost_table
from bench.functions import API, FASTAPI, LABELS, MINIMAL
from bench.measure import ColdSample, RssTrace, WarmResult, percentile

SIZE_LIMIT_MB = 150


@dataclass
class RunResult:
    meta: dict[str, Any]
    cold: dict[str, list[ColdSample]]
    warm: WarmResult
    rss: RssTrace | None
    sizes: dict[str, dict[str, int]]
    extra: dict[str, Any] = field(default_factory=dict)


def _mb(n: int) -> float:
    return n / 1e6


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def summary(run: RunResult) -> dict[str, Any]:
    """Medians, percentiles and same-run ratios: the figures the report and README quote."""
    cold: dict[str, Any] = {}
    for name, samples in run.cold.items():
        values = [s.cold_ms for s in samples]
        cold[name] = {
            "n": len(values),
            "median_ms": percentile(values, 50),
            "p25_ms": percentile(values, 25),
            "p75_ms": percentile(values, 75),
            "p99_ms": percentile(values, 99),
            "init_median_ms": percentile([s.init_ms for s in samples], 50),
            "wall_median_ms": percentile([s.wall_ms for s in samples], 50),
            "peak_rss_mb": percentile([s.peak_rss_kb / 1024 for s in samples], 50),
        }
    for name in run.cold:
        if MINIMAL in run.cold and name != MINIMAL:
            # Paired within a round: both started back to back, under the same load.
            pairs = [a.cold_ms / b.cold_ms for a, b in zip(run.cold[name], run.cold[MINIMAL], strict=False)]
            cold[name]["paired_ratio_vs_minimal"] = {
                "median": percentile(pairs, 50),
                "p25": percentile(pairs, 25),
                "p75": percentile(pairs, 75),
            }
    warm: dict[str, Any] = {}
    for name, by_rows in run.warm.durations_ms.items():
        warm[name] = {
            str(n): {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "n": len(v)}
            for n, v in by_rows.items()
        }
    warm["floor"] = {
        str(n): {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "n": len(v)}
        for n, v in run.warm.floor_ms.items()
    }
    rss: dict[str, Any] | None = None
    if run.rss is not None and len(run.rss.rss_kb) > 1:
        kb = run.rss.rss_kb
        # Growth after the first sample (warm-up allocations settle by then).
        rss = {
            "function": run.rss.function,
            "requests": run.rss.requests[-1],
            "first_mb": kb[1] / 1024,
            "last_mb": kb[-1] / 1024,
            "max_mb": max(kb) / 1024,
            "growth_mb": (kb[-1] - kb[1]) / 1024,
            "peak_mb": run.rss.peak_kb / 1024,
        }
    return {
        "meta": run.meta,
        "cold": cold,
        "warm": warm,
        "warm_peak_rss_mb": {k: v / 1024 for k, v in run.warm.peak_rss_kb.items()},
        "rss": rss,
        "sizes_mb": {
            k: {p: _mb(b) for p, b in v.items()} | {"total": _mb(sum(v.values()))}
            for k, v in run.sizes.items()
        },
        "extra": run.extra,
    }


def write(run: RunResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = summary(run)
    raw = {
        "cold": {k: [asdict(s) for s in v] for k, v in run.cold.items()},
        "warm": run.warm.durations_ms,
        "floor": run.warm.floor_ms,
        "rss": asdict(run.rss) if run.rss else None,
    }
    paths = {"json": out_dir / "results.json", "md": out_dir / "report.md", "png": out_dir / "bench.png"}
    paths["json"].write_text(json.dumps({"summary": data, "raw": raw}, indent=1, default=str))
    chart(data, run, paths["png"])
    paths["md"].write_text(markdown(data, paths["png"].name))
    return paths


def markdown(data: dict[str, Any], chart_name: str) -> str:
    meta, cold, warm = data["meta"], data["cold"], data["warm"]
    lines = [
        "# onnxlambda benchmark",
        "",
        f"{meta['started']} · commit `{meta['commit']}` · model `{meta['model']}` · "
        f"{'QUICK mode' if meta['quick'] else 'full run'} · {meta['cpus']} CPUs · "
        f"load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end · "
        f"{meta['elapsed_s']:.0f} s",
        "",
        "All functions run under the Lambda Runtime Interface Emulator with the python3.13 runtime "
        "interpreter (`.venv-runtime`), interleaved round-robin so machine noise falls on each alike. "
        "Compare ratios within this run, not absolute milliseconds across runs.",
        "",
        f"![benchmark]({chart_name})",
        "",
        "## Cold start (Init Duration + first invoke Duration, one fresh emulator per sample)",
        "",
        "| function | n | median ms | p25-p75 ms | p99 ms | vs minimal (medians) "
        "| paired ratio median [p25-p75] | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = cold.get(MINIMAL, {}).get("median_ms", 0.0)
    for name, c in cold.items():
        paired = c.get("paired_ratio_vs_minimal")
        paired_s = f"{paired['median']:.2f}x [{paired['p25']:.2f}-{paired['p75']:.2f}]" if paired else "-"
        lines.append(
            f"| {LABELS[name]} | {c['n']} | {c['median_ms']:.0f} | {c['p25_ms']:.0f}-{c['p75_ms']:.0f} | "
            f"{c['p99_ms']:.0f} | {_ratio(c['median_ms'], base)} | {paired_s} | {c['peak_rss_mb']:.0f} |"
        )
    if MINIMAL in cold and cold[MINIMAL]["median_ms"]:
        spread = (cold[MINIMAL]["p75_ms"] - cold[MINIMAL]["p25_ms"]) / cold[MINIMAL]["median_ms"]
        lines += [
            "",
            f"Noise: the minimal handler's cold-start interquartile range is {spread:.0%} of its median.",
        ]
    lines += [
        "",
        "## Warm handler Duration (REPORT Duration, same rows for every function)",
        "",
        "| rows | function | p50 ms | p99 ms | p50 vs minimal | p99 vs minimal | p50 vs floor | n |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    row_counts = sorted({int(n) for by in warm.values() for n in by})
    for n in row_counts:
        key = str(n)
        mn = warm.get(MINIMAL, {}).get(key)
        fl = warm["floor"].get(key)
        for name in [*(k for k in warm if k != "floor"), "floor"]:
            w = warm[name].get(key)
            if not w:
                continue
            label = "bare `session.run` (floor)" if name == "floor" else LABELS[name]
            lines.append(
                f"| {n:,} | {label} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | "
                f"{_ratio(w['p50_ms'], mn['p50_ms']) if mn else '-'} | "
                f"{_ratio(w['p99_ms'], mn['p99_ms']) if mn else '-'} | "
                f"{_ratio(w['p50_ms'], fl['p50_ms']) if fl else '-'} | {w['n']} |"
            )
    lines += [
        "",
        "The floor is onnxruntime `session.run` on ready tensors in the benchmark process: no event, "
        "no JSON, no validation. REPORT Duration covers the handler only (not the emulator's HTTP hop).",
        "",
        "Batch scoring throughput (rows/s end to end against bare onnxruntime and a parse-and-run "
        "floor, peak memory at 1x/10x/100x file sizes) is measured separately: `make bench-batch` "
        "(bench/batch_throughput.py; README, Batch scoring).",
        "",
        "## Size (unzipped, function code + layers)",
        "",
        "| function | parts MB | total MB |",
        "| --- | --- | ---: |",
    ]
    for name, parts in data["sizes_mb"].items():
        shown = ", ".join(f"{k} {v:.1f}" for k, v in parts.items() if k != "total")
        flag = "" if parts["total"] <= SIZE_LIMIT_MB or name != API else f" (over {SIZE_LIMIT_MB} MB)"
        lines.append(f"| {LABELS[name]} | {shown} | {parts['total']:.1f}{flag} |")
    lines += [
        "",
        "## Memory (peak RSS = VmHWM of the awslambdaric process; "
        "the emulator's Max Memory Used is not real)",
        "",
        "| function | after the cold invoke MB | after the warm runs (up to 1,000 rows) MB |",
        "| --- | ---: | ---: |",
    ]
    for name in cold or data["warm_peak_rss_mb"]:
        lines.append(
            f"| {LABELS[name]} | {cold.get(name, {}).get('peak_rss_mb', 0):.0f} | "
            f"{data['warm_peak_rss_mb'].get(name, 0):.0f} |"
        )
    rss = data["rss"]
    if rss:
        lines += [
            "",
            f"Leak check, {LABELS[rss['function']]}: {rss['requests']:,} single-row requests in one "
            "execution environment; "
            f"RSS {rss['first_mb']:.1f} MB after the first sample, {rss['last_mb']:.1f} MB at the end "
            f"(growth {rss['growth_mb']:+.1f} MB, highest {rss['max_mb']:.1f} MB, "
            f"peak {rss['peak_mb']:.1f} MB).",
        ]
    lines += [
        "",
        "## Cost per million predictions (x86_64 list prices)",
        "",
        f"${PRICE_PER_GB_SECOND} per GB-second and ${PRICE_PER_REQUEST * 1e6:.2f} per million requests, "
        "1 ms billing. **Assumption: CPU scales with memory**: the warm p50 measured here stands for one "
        f"full vCPU (>= {FULL_VCPU_MB:,} MB) and stretches by {FULL_VCPU_MB:,}/M below it; the handler is "
        "single-threaded, so it gets no faster above that. Cold starts are not included.",
        "",
    ]
    cost_fns = [k for k in (API, MINIMAL, FASTAPI) if k in warm]
    header = "| memory MB | " + " | ".join(
        f"{LABELS[f]}, {n:,} row{'s' if n > 1 else ''}" for f in cost_fns for n in row_counts
    )
    lines += [header + " |", "| ---: |" + " ---: |" * (len(cost_fns) * len(row_counts))]
    tables = {
        (f, n): cost_table(warm[f][str(n)]["p50_ms"], n)
        for f in cost_fns
        for n in row_counts
        if str(n) in warm[f]
    }
    for i, memory in enumerate(MEMORY_SIZES_MB):
        cells = [
            f"${tables[(f, n)][i].usd_per_million_predictions:.3g}"
            for f in cost_fns
            for n in row_counts
            if (f, n) in tables
        ]
        lines.append(f"| {memory:,} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets", ""]
    lines += [f"- {t}" for t in targets(data)]
    if data["extra"]:
        lines += ["", "## Notes", ""] + [f"- {k}: {v}" for k, v in data["extra"].items()]
    return "\n".join(lines) + "\n"


def targets(data: dict[str, Any]) -> list[str]:
    cold, warm = data["cold"], data["warm"]
    out: list[str] = []

    def verdict(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    if API in cold and MINIMAL in cold:
        r = cold[API]["median_ms"] / cold[MINIMAL]["median_ms"]
        out.append(f"Cold start median within 1.5x of minimal: {r:.2f}x, {verdict(r <= 1.5)}")
    if API in warm and MINIMAL in warm:
        for n, limit in (("1", 1.5), ("1000", 1.25)):
            if n in warm[API] and n in warm[MINIMAL]:
                r = warm[API][n]["p50_ms"] / warm[MINIMAL][n]["p50_ms"]
                out.append(f"Warm {n}-row p50 within {limit}x of minimal: {r:.2f}x, {verdict(r <= limit)}")
    if API in cold and FASTAPI in cold:
        figures = [cold[API]["median_ms"] < cold[FASTAPI]["median_ms"]]
        figures += [
            warm[API][n][p] < warm[FASTAPI][n][p]
            for n in warm.get(FASTAPI, {})
            if n in warm.get(API, {})
            for p in ("p50_ms", "p99_ms")
        ]
        out.append(
            f"Faster than FastAPI + Mangum on every figure: {sum(figures)}/{len(figures)}, "
            f"{verdict(all(figures))}"
        )
    if API in data["sizes_mb"]:
        total = data["sizes_mb"][API]["total"]
        out.append(f"Built size <= {SIZE_LIMIT_MB} MB: {total:.1f} MB, {verdict(total <= SIZE_LIMIT_MB)}")
    if data["rss"]:
        g = data["rss"]["growth_mb"]
        out.append(
            f"RSS flat across {data['rss']['requests']:,} requests: {g:+.1f} MB, "
            f"{verdict(abs(g) <= 2.0)} (threshold 2 MB)"
        )
    return out


def chart(data: dict[str, Any], run: RunResult, path: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    names = list(run.cold)
    ax.boxplot([[s.cold_ms for s in run.cold[n]] for n in names], tick_labels=[LABELS[n] for n in names])
    ax.set_title("Cold start: Init + first Duration (ms)")
    ax.set_ylabel("ms")

    ax = axes[0][1]
    warm = data["warm"]
    row_counts = sorted({int(n) for by in warm.values() for n in by})
    series = [k for k in warm if k != "floor"] + ["floor"]
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        values = [warm[name].get(str(n), {}).get("p50_ms", 0) for n in row_counts]
        ax.bar(
            [x + i * width for x in range(len(row_counts))],
            values,
            width,
            label=LABELS.get(name, "bare session.run"),
        )
    ax.set_xticks(
        [x + width * (len(series) - 1) / 2 for x in range(len(row_counts))],
        [f"{n:,} row{'s' if n > 1 else ''}" for n in row_counts],
    )
    ax.set_yscale("log")
    ax.set_title("Warm Duration p50 (ms, log scale)")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    if run.rss:
        ax.plot(run.rss.requests, [k / 1024 for k in run.rss.rss_kb], marker=".")
        ax.set_ylim(bottom=0)
    ax.set_title(
        f"RSS of the runtime process over warm requests ({LABELS[run.rss.function] if run.rss else '-'})"
    )
    ax.set_xlabel("requests")
    ax.set_ylabel("MB")

    ax = axes[1][1]
    for name in [k for k in (API, MINIMAL, FASTAPI) if k in warm]:
        for n in row_counts:
            if str(n) not in warm[name]:
                continue
            points = cost_table(warm[name][str(n)]["p50_ms"], n)
            style = "-" if name == API else "--" if name == MINIMAL else ":"
            ax.plot(
                [p.memory_mb for p in points],
                [p.usd_per_million_predictions for p in points],
                style,
                marker=".",
                label=f"{LABELS[name]}, {n:,} row{'s' if n > 1 else ''}",
            )
    ax.set_xscale("log")
    ax.set_xticks(list(MEMORY_SIZES_MB), [f"{m:,}" for m in MEMORY_SIZES_MB], fontsize=7)
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_title("$ per million predictions vs memory (CPU scales with memory)")
    ax.set_xlabel("memory MB")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
