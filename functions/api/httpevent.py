"""What every route of the API function reads from an API Gateway HTTP API (payload v2) event,
whatever its protocol: the request id and the raw body, size-checked before it is decoded."""

import base64
import binascii
from typing import Any

from onnxlambda.contract.errors import malformed, too_large


def request_id(event: Any) -> str:
    """API Gateway's request id (also the correlation id of every log line)."""
    try:
        return str((event.get("requestContext") or {}).get("requestId") or "unknown")
    except (AttributeError, TypeError):
        return "unknown"


def raw_body(body: str | None, is_base64: bool, max_bytes: int) -> bytes:
    """The body's bytes. Refused as 413 before any decoding when over `max_bytes` (a base64
    body carries 3/4 of its length in bytes), as 400 when the base64 is broken."""
    text = body or ""
    size = (len(text) * 3) // 4 if is_base64 else len(text)
    if size > max_bytes:
        raise too_large("body_too_large", f"body is {size} bytes; at most {max_bytes} allowed")
    if not is_base64:
        return text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise malformed("body is not valid base64") from None
