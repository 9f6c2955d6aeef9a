"""summary.json, one document for both paths.

The single-invocation path (onnxlambda.batch.scoring.score_object) and the steps of a Step
Functions run (plan, merge, failure report) all build it here, so a consumer reads both alike.
`scored_by` is the one field that says which path scored the object
(tests/unit/batch/test_distributed_property.py compares the two documents).
"""

from __future__ import annotations

import json
from typing import Any

from onnxlambda.batch.config import OutputKeys
from onnxlambda.batch.scorer import model_ref
from onnxlambda.batch.writer import S3Client
from onnxlambda.contract.manifest import Manifest


def build_summary(
    *,
    ok: bool,
    source: dict[str, Any],
    keys: OutputKeys,
    manifest: Manifest,
    rows: dict[str, int],
    lines: dict[str, int],
    rejected_by_code: dict[str, int],
    started_at: str,
    duration_ms: float,
    drift: dict[str, Any] | None,
    scored_by: dict[str, Any],
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "status": "succeeded" if ok else "failed",
        "input": source,
        "output": {
            "prefix": keys.base,
            "scored": keys.scored if ok else None,
            "errors": keys.errors if ok else None,
            "summary": keys.summary,
        },
        "model": model_ref(manifest),
        "rows": rows,
        "lines": lines,
        "rejected_by_code": dict(sorted(rejected_by_code.items())),
        "started_at": started_at,
        "duration_ms": duration_ms,
        "drift": drift,
        "scored_by": scored_by,
    }
    if error is not None:
        summary["error"] = error
    return summary


def failed_summary(
    source: dict[str, Any],
    keys: OutputKeys,
    manifest: Manifest,
    code: str,
    message: str,
    *,
    started_at: str,
    duration_ms: float,
    scored_by: dict[str, Any],
    rows: dict[str, int] | None = None,
    lines: dict[str, int] | None = None,
    rejected_by_code: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A failed run: no scored or errors file, the reason, and what was counted before it."""
    return build_summary(
        ok=False,
        source=source,
        keys=keys,
        manifest=manifest,
        rows=rows or {"read": 0, "scored": 0, "rejected": 0},
        lines=lines or {"total": 0, "header": 0, "blank": 0, "scored": 0, "rejected": 0},
        rejected_by_code=rejected_by_code or {},
        started_at=started_at,
        duration_ms=duration_ms,
        drift=None,
        scored_by=scored_by,
        error={"code": code, "message": message},
    )


def read_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """An object's JSON, or None when there is no such key (listed first: a missing key is an
    empty listing under s3:ListBucket on the prefix, not a 403/404 to tell apart)."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    if not any(o.get("Key") == key for o in listing.get("Contents") or ()):
        return None
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        found: dict[str, Any] = json.loads(body.read())
    except ValueError:
        return None
    finally:
        body.close()
    return found


def write_summary(s3: S3Client, bucket: str, key: str, summary: dict[str, Any]) -> None:
    """summary.json, formatted as the single path writes it."""
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=(json.dumps(summary, indent=2) + "\n").encode("utf-8"),
        ContentType="application/json",
    )


__all__ = ["build_summary", "failed_summary", "model_ref", "read_json", "write_summary"]
