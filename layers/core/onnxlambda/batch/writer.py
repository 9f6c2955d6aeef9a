"""Output of a batch run: bytes uploaded to S3 in multipart parts, visible only when complete.

S3 calls spend their time waiting on the network, so the batch path overlaps them with work
(`background()`): a multipart part uploads while the next chunk is scored, and the scored and
errors files complete side by side. The waiting releases the GIL; the scoring does not wait.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last

_POOL: ThreadPoolExecutor | None = None


def background() -> ThreadPoolExecutor:
    """Two threads for S3 calls, created on first use and kept for the execution environment
    (boto3 clients are thread-safe). Two: the scored and the errors file at once."""
    global _POOL  # noqa: PLW0603 - one pool per execution environment, like the S3 client
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-s3")
    return _POOL


class S3Client(Protocol):
    """The few S3 calls the batch path makes (a boto3 S3 client satisfies it)."""

    def create_multipart_upload(self, **kwargs: Any) -> Any: ...
    def upload_part(self, **kwargs: Any) -> Any: ...
    def complete_multipart_upload(self, **kwargs: Any) -> Any: ...
    def abort_multipart_upload(self, **kwargs: Any) -> Any: ...
    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def list_objects_v2(self, **kwargs: Any) -> Any: ...


class MultipartWriter:
    """Buffer bytes and upload them as multipart parts of `part_bytes` (>= 5 MiB, S3's minimum
    for all but the last part). Nothing is visible under the key until `close()` completes the
    upload, so a failed run leaves no half-written file; `abort()` discards the parts.
    A file smaller than one part is sent with a single PutObject.

    A full part is uploaded in the background while the caller goes on writing; at most one
    part is in flight (memory: the buffer plus one part), and its error surfaces at the next
    `write`, `close` or `abort`."""

    def __init__(self, s3: S3Client, bucket: str, key: str, content_type: str, part_bytes: int) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum part size)")
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: Future[dict[str, Any]] | None = None
        self.bytes_written = 0
        self.closed = False

    @property
    def parts(self) -> int:
        return len(self._parts)

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= self._part_bytes:
            self._flush_part()

    def settle(self) -> None:
        """Wait for the part in flight; record it, or raise its error."""
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._parts.append(future.result())

    def _flush_part(self) -> None:
        self.settle()
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self._content_type
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        body = bytes(self._buffer)
        self._buffer.clear()
        self._in_flight = background().submit(self._upload_part, self._upload_id, number, body)

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def close(self) -> None:
        if self.closed:
            return
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            self.settle()
            if self._buffer:  # the last part, in this thread: close may itself run in the pool
                self._parts.append(
                    self._upload_part(self._upload_id, len(self._parts) + 1, bytes(self._buffer))
                )
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self.closed = True

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._buffer.clear()
        if self._in_flight is not None:  # let it finish (or fail) so the abort removes it too
            self._in_flight.exception()
            self._in_flight = None
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)


def complete_all(*writers: MultipartWriter) -> list[Future[None]]:
    """Start completing the uploads side by side (each its own S3 round trip); see `wait_for`."""
    return [background().submit(w.close) for w in writers]


def wait_for(closing: list[Future[None]] | None, writers: tuple[MultipartWriter, ...]) -> None:
    """Wait for every completion; if one failed, discard what is left and raise its error. The
    summary is written only after this returns: onnxlambda.batch.scoring's completion contract."""
    error: BaseException | None = None
    for future in closing or ():
        error = error or future.exception()
    if error is not None:
        abort_all(*writers)  # a no-op for a writer already completed
        raise error


def abort_all(*writers: MultipartWriter) -> None:
    """Discard the writers' parts on the way out of a failure, without masking it: an abort that
    fails too (S3 still unreachable) is logged, and the bucket's lifecycle rule removes the parts."""
    for writer in writers:
        try:
            writer.abort()
        except Exception as exc:
            log.warning("could not abort the upload of %s: %s", writer.key, type(exc).__name__)


__all__ = [
    "MIN_PART_BYTES",
    "MultipartWriter",
    "S3Client",
    "abort_all",
    "background",
    "complete_all",
    "wait_for",
]
