"""Synthetic captured records for monitor and report tests, drawn from a manifest's own baselines
(so "no drift" really is the baseline distribution) or deliberately shifted."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np

from onnxlambda.contract.manifest import CategoricalBaseline, ClassificationOutput, Manifest, NumericBaseline


def _draw_numeric(b: NumericBaseline, rng: np.random.Generator, n: int) -> list[float]:
    edges = [b.min, *b.cut_points, b.max]
    shares = np.asarray(b.counts, float) / sum(b.counts)
    bins = rng.choice(len(b.counts), n, p=shares)
    return [float(rng.uniform(edges[i], max(edges[i + 1], edges[i] + 1e-9))) for i in bins]


def _draw_category(counts: dict[str, int], rng: np.random.Generator, n: int) -> list[str]:
    keys = list(counts)
    shares = np.asarray([counts[k] for k in keys], float) / sum(counts.values())
    return [keys[i] for i in rng.choice(len(keys), n, p=shares)]


def inference_records(
    manifest: Manifest,
    n: int,
    start: datetime,
    seed: int,
    *,
    shift: dict[str, float] | None = None,
    label: str | None = None,
    version: str | None = None,
    prefix: str = "req",
) -> list[dict[str, Any]]:
    """n capture records spread over the minute after `start`, from the baselines; `shift` adds to
    numeric features, `label` forces every prediction."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for f in manifest.features:
        b = manifest.baselines.features[f.name]
        if isinstance(b, NumericBaseline):
            columns[f.name] = [v + (shift or {}).get(f.name, 0.0) for v in _draw_numeric(b, rng, n)]
        else:
            assert isinstance(b, CategoricalBaseline)
            columns[f.name] = _draw_category(b.counts, rng, n)
    out, base = manifest.output, manifest.baselines.output
    if isinstance(out, ClassificationOutput):
        assert isinstance(base, CategoricalBaseline)
        labels = [label] * n if label else _draw_category(base.counts, rng, n)
        predictions: list[dict[str, Any]] = [
            {"label": x, "probabilities": {y: (0.9 if y == x else 0.05) for y in out.labels}} for x in labels
        ]
    else:
        assert isinstance(base, NumericBaseline)
        predictions = [{out.name: v} for v in _draw_numeric(base, rng, n)]
    t0 = int(start.timestamp() * 1000)
    return [
        {
            "record_type": "inference",
            "schema": 1,
            "ts": t0 + i * 60_000 // max(n, 1),
            "inference_id": f"{prefix}-{i}",
            "request_id": prefix,
            "model_name": manifest.name,
            "model_version": version or manifest.version,
            "model_sha256": manifest.sha256,
            "features": {name: col[i] for name, col in columns.items()},
            "prediction": predictions[i],
        }
        for i in range(n)
    ]


def feedback_records(
    records: list[dict[str, Any]], ts: datetime, correct: float, labels: list[str]
) -> list[dict[str, Any]]:
    """Feedback for each record: the predicted label for the first `correct` share, another after."""
    k = round(len(records) * correct)
    out = []
    for i, r in enumerate(records):
        predicted = r["prediction"]["label"]
        actual = predicted if i < k else next(x for x in labels if x != predicted)
        out.append(
            {
                "record_type": "feedback",
                "schema": 1,
                "ts": int(ts.timestamp() * 1000) + i,
                "inference_id": r["inference_id"],
                "actual": actual,
                "model_version": r["model_version"],
            }
        )
    return out


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()
