"""Settings read once from the environment (set in template.yaml Globals or locally)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onnxlambda.redaction import parse_fields

DEFAULT_MODEL_DIR = "/opt/model"  # where the model layer lands on Lambda


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


@dataclass(frozen=True, slots=True)
class Settings:
    model_dir: Path
    max_rows: int
    max_body_bytes: int
    max_error_details: int
    ort_intra_op_threads: int
    # Feature names whose values never appear in logs or error bodies (REDACT_FIELDS, comma-separated).
    redact_fields: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            model_dir=Path(os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR),
            max_rows=_int("MAX_ROWS", 1000),
            # API Gateway and synchronous Lambda cap payloads at 6 MB; refuse well before that,
            # before any parsing work is done.
            max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
            max_error_details=_int("MAX_ERROR_DETAILS", 100),
            # Small models run fastest single-threaded; Lambda gives ~1 vCPU per 1,769 MB.
            ort_intra_op_threads=_int("ORT_INTRA_OP_THREADS", 1),
            redact_fields=parse_fields(os.environ.get("REDACT_FIELDS")),
        )
