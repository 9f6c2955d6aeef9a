"""Where a batch run reads and writes, and its limits: BatchConfig (from the ONNXLAMBDA_BATCH_*
settings), the output keys of one object, and the recursion guard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from onnxlambda import settings
from onnxlambda.batch.readers import TEXT_CELL_CHARS
from onnxlambda.batch.writer import MIN_PART_BYTES
from onnxlambda.contract.manifest import Manifest


@dataclass(frozen=True, slots=True)
class BatchConfig:
    input_prefix: str = "incoming/"
    output_prefix: str = "scored/"
    bucket: str | None = None  # when set, events for any other bucket are refused
    chunk_rows: int = 10_000
    part_bytes: int = 8 * 1024 * 1024
    # Stop this long before the Lambda timeout: enough to abort uploads and write the report.
    time_margin_ms: int = 20_000
    id_column: str | None = "id"
    # Refuse larger objects up front (0: no limit): set it from the measured throughput so a
    # file that cannot finish in one invocation fails in a second, not after 15 minutes.
    max_bytes: int = 0
    # The longest CSV cell that may hold a line break (id, pass-through text): beyond it, a record
    # spanning lines is an unbalanced quote (onnxlambda.batch.readers).
    max_text_cell_chars: int = TEXT_CELL_CHARS

    def __post_init__(self) -> None:
        if not self.input_prefix or not self.output_prefix:
            raise ValueError("input and output prefixes must be non-empty")
        if self.input_prefix.startswith(self.output_prefix) or self.output_prefix.startswith(
            self.input_prefix
        ):
            # Output written under the input prefix would trigger the function again, forever.
            raise ValueError(
                f"input prefix {self.input_prefix!r} and output prefix {self.output_prefix!r} overlap"
            )
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")
        if self.part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        if self.max_text_cell_chars < 1:
            raise ValueError("max_text_cell_chars must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchConfig:
        """From the ONNXLAMBDA_BATCH_* variables (onnxlambda.settings: meanings and defaults)."""
        return cls(
            input_prefix=settings.get("ONNXLAMBDA_BATCH_INPUT_PREFIX", env),
            output_prefix=settings.get("ONNXLAMBDA_BATCH_OUTPUT_PREFIX", env),
            bucket=settings.get("ONNXLAMBDA_BATCH_BUCKET", env) or None,
            chunk_rows=settings.get("ONNXLAMBDA_BATCH_CHUNK_ROWS", env),
            part_bytes=settings.get("ONNXLAMBDA_BATCH_PART_BYTES", env),
            time_margin_ms=settings.get("ONNXLAMBDA_BATCH_TIME_MARGIN_MS", env),
            id_column=settings.get("ONNXLAMBDA_BATCH_ID_COLUMN", env) or None,
            max_bytes=settings.get("ONNXLAMBDA_BATCH_MAX_BYTES", env),
            max_text_cell_chars=settings.get("ONNXLAMBDA_BATCH_MAX_TEXT_CELL_CHARS", env),
        )


@dataclass(frozen=True, slots=True)
class OutputKeys:
    base: str
    scored: str
    errors: str
    summary: str


def output_keys(config: BatchConfig, key: str, etag: str, manifest: Manifest, fmt: str | None) -> OutputKeys:
    """Deterministic output location: same input object and model version, same keys."""
    relative = key[len(config.input_prefix) :]
    base = f"{config.output_prefix}{relative}/etag={etag}/model={manifest.name}-{manifest.version}/"
    ext = "jsonl" if fmt == "jsonl" else "csv"
    return OutputKeys(base, f"{base}scored.{ext}", f"{base}errors.jsonl", f"{base}summary.json")


def refusal(config: BatchConfig, bucket: str, key: str) -> str | None:
    """Why this object must not be processed (recursion guard), or None."""
    if config.bucket and bucket != config.bucket:
        return f"bucket {bucket!r} is not the configured batch bucket {config.bucket!r}"
    if key.startswith(config.output_prefix):
        return f"key {key!r} is under the output prefix {config.output_prefix!r}: refusing to re-score output"
    if not key.startswith(config.input_prefix):
        return f"key {key!r} is outside the input prefix {config.input_prefix!r}"
    if key.endswith("/"):
        return f"key {key!r} is a folder marker, not a file"
    return None


__all__ = ["BatchConfig", "OutputKeys", "output_keys", "refusal"]
