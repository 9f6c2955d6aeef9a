"""Output of a batch run: bytes uploaded to S3 in multipart parts, visible only when complete."""

from __future__ import annotations

from typing import Any, Protocol

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last


class S3Client(Protocol):
    """The few S3 calls the writer makes (a boto3 S3 client satisfies it)."""

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
    A file smaller than one part is sent with a single PutObject."""

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

    def _flush_part(self) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self._content_type
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        body = bytes(self._buffer)
        self._buffer.clear()
        answer = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        if self.closed:
            return
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            if self._buffer:
                self._flush_part()
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
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)


__all__ = ["MIN_PART_BYTES", "MultipartWriter", "S3Client"]
