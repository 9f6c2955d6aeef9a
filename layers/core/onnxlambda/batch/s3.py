"""The batch function's S3 client: retries, backoff and timeouts, in this one place.

Every S3 call the batch path makes (GetObject, multipart uploads, PutObject) goes through one
client built here with botocore's own retry machinery, so throttling (`SlowDown`, 503),
transient 5xx answers and connection errors are retried with exponential backoff and jitter
before anything else sees them:

- mode "standard" (default): up to `max_attempts` attempts in total per call, backoff
  `random() * 2**(attempt-1)` seconds capped at 20 s, a client-side retry quota so a broken
  endpoint is not hammered; "adaptive" adds client-side rate limiting on throttles;
- connect and read timeouts bound a stalled connection (the read timeout applies to every
  socket read, including the streamed body of the input object).

When the attempts are exhausted the call raises `botocore.exceptions.ClientError` (or a
connection error); the batch core aborts its multipart uploads and re-raises, and Lambda's
asynchronous retries (EventInvokeConfig, 2) and then its on-failure destination (SQS) take over.
A read error half-way through the input body is not retried by botocore (the stream has been
partly consumed): it takes the same path, and the retried event starts the file again.

Environment: the ONNXLAMBDA_BATCH_S3_* settings (onnxlambda.settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from onnxlambda import settings

if TYPE_CHECKING:  # botocore is imported when a client is built, not with the core package
    from botocore.config import Config

RetryMode = Literal["standard", "adaptive"]


@dataclass(frozen=True, slots=True)
class S3ClientSettings:
    retry_mode: RetryMode = "standard"
    # 5 attempts: 4 backoffs of at most 1, 2, 4, 8 s (15 s worst case) against a 900 s timeout.
    max_attempts: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.retry_mode not in {"standard", "adaptive"}:
            raise ValueError(
                f"ONNXLAMBDA_BATCH_S3_RETRY_MODE must be standard or adaptive, not {self.retry_mode!r}"
            )
        if self.max_attempts < 1:
            raise ValueError("ONNXLAMBDA_BATCH_S3_MAX_ATTEMPTS must be at least 1")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("S3 timeouts must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3ClientSettings:
        """From the ONNXLAMBDA_BATCH_S3_* variables (onnxlambda.settings)."""
        return cls(
            retry_mode=settings.get("ONNXLAMBDA_BATCH_S3_RETRY_MODE", env),
            max_attempts=settings.get("ONNXLAMBDA_BATCH_S3_MAX_ATTEMPTS", env),
            connect_timeout_s=settings.get("ONNXLAMBDA_BATCH_S3_CONNECT_TIMEOUT_S", env),
            read_timeout_s=settings.get("ONNXLAMBDA_BATCH_S3_READ_TIMEOUT_S", env),
        )

    def botocore_config(self) -> Config:
        from botocore.config import Config

        return Config(
            # total_max_attempts counts the first call; retries={"max_attempts": n} would mean
            # n retries (n + 1 calls), botocore's legacy reading of that key.
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            tcp_keepalive=True,
        )


def s3_client(settings: S3ClientSettings | None = None) -> Any:
    """A boto3 S3 client with the batch path's retry and timeout configuration."""
    import boto3

    return boto3.client("s3", config=(settings or S3ClientSettings.from_env()).botocore_config())


__all__ = ["RetryMode", "S3ClientSettings", "s3_client"]
