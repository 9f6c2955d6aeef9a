"""Synthetic batch files for tests and benchmarks, drawn from a manifest's own baselines.

Each numeric feature is sampled bin by bin with the baseline's bin proportions (uniform inside a
bin, the outer bins bounded by the baseline's min and max), each categorical one with the
baseline's category proportions, nulls at the baseline's missing rate where the feature allows
them. So a large sample shows no drift against the manifest, and a seeded sample is reproducible.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from onnxlambda.contract.manifest import CategoricalBaseline, Manifest, NumericBaseline


def sample_columns(manifest: Manifest, n: int, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for f in manifest.features:
        b = manifest.baselines.features[f.name]
        if isinstance(b, CategoricalBaseline):
            names = list(b.counts)
            p = np.asarray(list(b.counts.values()), dtype=np.float64)
            values: list[Any] = [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]
        else:
            assert isinstance(b, NumericBaseline)
            edges = np.asarray([b.min, *b.cut_points, b.max], dtype=np.float64)
            p = np.asarray(b.counts, dtype=np.float64)
            bins = rng.choice(len(p), size=n, p=p / p.sum())
            lo, hi = edges[bins], np.maximum(edges[bins + 1], edges[bins])
            x = lo + (hi - lo) * rng.random(n)
            if f.minimum is not None or f.maximum is not None:
                x = np.clip(x, f.minimum, f.maximum)
            values = np.round(x, 2).tolist() if f.dtype != "int64" else np.round(x).astype(int).tolist()
        if f.nullable and b.count:
            rate = b.missing / b.count
            for i in np.flatnonzero(rng.random(n) < rate).tolist():
                values[i] = None
        columns[f.name] = values
    return columns


def sample_rows(manifest: Manifest, n: int, seed: int = 0) -> list[dict[str, Any]]:
    columns = sample_columns(manifest, n, seed)
    names = list(columns)
    return [dict(zip(names, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]


def csv_bytes(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    """CSV with a header in the given column order; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
    return buffer.getvalue().encode("utf-8")


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def csv_stream(manifest: Manifest, n: int, seed: int = 0, block: int = 50_000) -> Iterator[bytes]:
    """A large CSV generated block by block (bounded memory), header first."""
    names = manifest.feature_names
    yield (",".join(names) + "\n").encode()
    for start in range(0, n, block):
        rows = sample_rows(manifest, min(block, n - start), seed + start)
        yield csv_bytes(rows, names).split(b"\n", 1)[1]


__all__ = ["csv_bytes", "csv_stream", "jsonl_bytes", "sample_columns", "sample_rows"]
