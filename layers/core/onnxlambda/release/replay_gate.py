"""The pre-traffic hook's replay: the newest captured rows of the serving model through the new
version's model, compared with what production answered (functions/pretraffic, template.yaml
PreTrafficReplay*). Off unless ONNXLAMBDA_REPLAY_ROWS > 0; skipped, not failed, while there is
too little capture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from onnxlambda import settings
from onnxlambda.monitoring.window import S3Reader
from onnxlambda.release.captured import read_recent_s3, select, served_by
from onnxlambda.release.replay import ReplayThresholds, replay
from onnxlambda.serving.runtime import ModelRuntime


@dataclass(frozen=True, slots=True)
class ReplayGateSettings:
    """The pre-traffic hook's replay (template.yaml PreTrafficReplay*): off unless rows > 0."""

    rows: int = 0  # newest captured rows replayed at most (0: no replay)
    bucket: str = ""
    prefix: str = "capture/"
    lookback: timedelta = timedelta(hours=24)
    min_rows: int = 20  # fewer captured rows than this: skipped, not failed (no capture yet)
    max_objects: int = 200
    thresholds: ReplayThresholds = field(default_factory=ReplayThresholds)

    @property
    def enabled(self) -> bool:
        return self.rows > 0 and bool(self.bucket)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplayGateSettings:
        """From ONNXLAMBDA_REPLAY_* and the capture location (onnxlambda.settings)."""
        return cls(
            rows=settings.get("REPLAY_ROWS", env),
            bucket=settings.get("CAPTURE_BUCKET", env),
            prefix=settings.get("CAPTURE_PREFIX", env),
            lookback=timedelta(hours=settings.get("REPLAY_LOOKBACK_HOURS", env)),
            min_rows=settings.get("REPLAY_MIN_ROWS", env),
            max_objects=settings.get("REPLAY_MAX_OBJECTS", env),
            thresholds=ReplayThresholds(
                max_refused_share=settings.get("REPLAY_MAX_REFUSED_SHARE", env),
                min_agreement=settings.get("REPLAY_MIN_AGREEMENT", env),
                max_output_psi=settings.get("REPLAY_MAX_OUTPUT_PSI", env),
            ),
        )


@dataclass(frozen=True, slots=True)
class ReplayGateResult:
    passed: bool
    problems: list[str]
    summary: dict[str, Any]


def replay_gate(
    s3: S3Reader, candidate: ModelRuntime, settings: ReplayGateSettings, now: datetime
) -> ReplayGateResult:
    """Replay the newest captured rows of the serving model through the new version's model and
    compare with what production answered. Skipped (passed) when fewer than `min_rows` exist."""
    start = now - settings.lookback
    records, objects = read_recent_s3(
        s3,
        settings.bucket,
        settings.prefix,
        start,
        now,
        max_rows=settings.rows,
        max_objects=settings.max_objects,
    )
    # The reference is what the serving model answered: the most common sha256 in the window (rows
    # of an earlier, stopped canary of this very release are a minority and are left out).
    chosen = select(records.inferences, start=start, end=now)
    reference = served_by(chosen)
    chosen = [r for r in chosen if r.get("model_sha256") == reference][-settings.rows :]
    summary: dict[str, Any] = {
        "objects_read": objects,
        "rows": len(chosen),
        "reference_sha256": reference,
        "window": [start.isoformat(), now.isoformat()],
    }
    if len(chosen) < settings.min_rows:
        summary["skipped"] = f"{len(chosen)} captured rows (< {settings.min_rows}): nothing to replay yet"
        return ReplayGateResult(True, [], summary)
    report = replay(chosen, candidate, None, settings.thresholds, latency_rows=0)
    gate_result = report["gate"]
    comparison = report["comparison"]
    summary.update(
        compared=report["rows"]["compared"],
        newly_refused=report["rows"]["newly_refused"],
        agreement=comparison.get("agreement"),
        output_psi=(comparison.get("output_drift") or {}).get("psi"),
        checks=gate_result["checks"],
    )
    problems = [
        f"replay of {report['rows']['compared']} captured rows: {c['check']} {c['value']} "
        f"(limit {c['limit']})"
        for c in gate_result["checks"]
        if c["passed"] is False
    ]
    return ReplayGateResult(not problems, problems, summary)


__all__ = ["ReplayGateResult", "ReplayGateSettings", "replay_gate"]
