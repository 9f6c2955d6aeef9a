"""Settings read once from the environment (set in template.yaml Globals or locally)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onnxlambda.contract.redaction import parse_fields

DEFAULT_MODEL_DIR = "/opt/model"  # where the model layer lands on Lambda
MB_PER_VCPU = 1769  # Lambda allots CPU in proportion to memory: one full vCPU at 1,769 MB


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def ort_threads(raw: str, memory_mb: int) -> int:
    """ORT_INTRA_OP_THREADS: a count, or `auto` for one thread per whole vCPU the memory size buys."""
    raw = raw.strip()
    if raw == "auto":
        return max(1, memory_mb // MB_PER_VCPU)
    return int(raw) if raw else 1


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
            # `auto` matches the vCPUs of the memory size (template parameter OrtIntraOpThreads).
            ort_intra_op_threads=ort_threads(
                os.environ.get("ORT_INTRA_OP_THREADS", ""), _int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024)
            ),
            redact_fields=parse_fields(os.environ.get("REDACT_FIELDS")),
        )
