"""A seeded capture set: what the capture bucket would hold after an hour or two of real traffic.

Rows are drawn from the model's own baselines (tests.unit.capture_data), some values nulled, and
*answered by the shipped model itself* (ModelRuntime), so the captured predictions are the ones
production would have given. Mixed in, as real capture holds them: rows with a redacted feature,
rows served by an older model version whose contract lacked a feature, and rows outside the
window. Written as Firehose writes them: gzip JSON lines under `<prefix>YYYY/MM/DD/HH/`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from onnxlambda.contract.manifest import Manifest
from onnxlambda.serving.dataplane import answers
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from tests.conftest import MODELS
from tests.unit.capture_data import inference_records

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the window: [START, END)
END = START + timedelta(hours=2)
OLD_SHA = "0" * 64


@dataclass(frozen=True, slots=True)
class Capture:
    records: list[dict[str, Any]]
    start: datetime
    end: datetime

    def in_window(self) -> list[dict[str, Any]]:
        lo, hi = int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)
        return [r for r in self.records if lo <= r["ts"] < hi]


def seeded_capture(model: str = "penguins", n: int = 400, seed: int = 7, start: datetime = START) -> Capture:
    """`n` rows over the two hours from `start` (the window), plus the extras (module docstring)."""
    end = start + (END - START)
    runtime = ModelRuntime.load(MODELS / model)
    manifest = runtime.manifest
    rng = np.random.default_rng(seed)
    # n rows over the two hours of the window (inference_records spreads them over one minute)
    records = []
    for hour in range(2):
        part = inference_records(
            manifest, n // 2, start + timedelta(hours=hour), seed + hour, prefix=f"h{hour}"
        )
        for i, r in enumerate(part):
            r["ts"] = int((start + timedelta(hours=hour)).timestamp() * 1000) + i * 3_600_000 // len(part)
        records += part
    _within_contract(manifest, records)
    for r in records:
        for f in manifest.features:
            if f.nullable and rng.random() < 0.05:
                r["features"][f.name] = None
    _answer(runtime, records)
    # a feature redacted at capture (ONNXLAMBDA_REDACT_FIELDS): the row cannot be replayed
    redacted_feature = manifest.features[-1].name
    for r in records[5:8]:
        del r["features"][redacted_feature]
        r["redacted"] = [redacted_feature]
    # served by an older version whose contract lacked the first feature
    older = inference_records(
        manifest, 4, start + timedelta(minutes=30), seed + 10, prefix="old", version="0.9.0"
    )
    for r in older:
        del r["features"][manifest.features[0].name]
        r["model_sha256"] = OLD_SHA
    # outside the window, before and after
    outside = inference_records(manifest, 6, start - timedelta(hours=1), seed + 20, prefix="before")
    outside += inference_records(manifest, 6, end, seed + 21, prefix="after")
    _within_contract(manifest, older + outside)
    _answer(runtime, outside)
    return Capture(records + older + outside, start, end)


def _within_contract(manifest: Manifest, records: Sequence[dict[str, Any]]) -> None:
    """Values inside each feature's range (a draw is uniform within a baseline bin, and the last
    bin may reach past the contract's bound), rounded as callers send them."""
    for r in records:
        r["protocol"] = "predict"
        for f in manifest.features:
            value = r["features"].get(f.name)
            if isinstance(value, float):
                low = f.minimum if f.minimum is not None else value
                high = f.maximum if f.maximum is not None else value
                r["features"][f.name] = round(min(max(value, low), high), 4)


def _answer(runtime: ModelRuntime, records: Sequence[dict[str, Any]]) -> None:
    batch = Validator(runtime.manifest, max_rows=len(records)).validate([r["features"] for r in records])
    for r, answer in zip(
        records, answers(runtime.manifest, runtime.run(batch.columns, batch.rows)), strict=True
    ):
        r["prediction"] = answer


def firehose_key(prefix: str, ts_ms: int, part: int) -> str:
    t = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return f"{prefix}{t:%Y/%m/%d/%H}/onnxlambda-capture-1-{t:%Y-%m-%d-%H-%M-%S}-{part:04d}.gz"


def objects(
    records: Sequence[dict[str, Any]], prefix: str = "capture/", per_object: int = 25
) -> dict[str, bytes]:
    """The records as Firehose would deliver them: gzip JSON-lines objects in arrival order."""
    ordered = sorted(records, key=lambda r: r["ts"])
    out: dict[str, bytes] = {}
    for part, at in enumerate(range(0, len(ordered), per_object)):
        chunk = ordered[at : at + per_object]
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in chunk).encode()
        out[firehose_key(prefix, chunk[-1]["ts"] + 60_000, part)] = gzip.compress(body, mtime=0)
    return out


def write_directory(records: Sequence[dict[str, Any]], target: Path) -> Path:
    for key, body in objects(records, prefix="").items():
        path = target / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return target
