"""API Gateway HTTP API (payload format 2.0) events and responses, as the real service shapes them.

Used by the local HTTP front to turn a plain HTTP request into the event Lambda would receive,
and by tests to build events; `events/*.json` hold the same shape.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


def http_api_event(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    route_key: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    content_type = headers.get("content-type", "")
    now = time.time()
    request_id = uuid.uuid4().hex[:16]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        params: dict[str, str] = {}
        for part in query.split("&"):
            key, _, value = part.partition("=")
            params[key] = value if key not in params else f"{params[key]},{value}"
        event["queryStringParameters"] = params
    if body:
        # HTTP APIs pass text bodies through and base64-encode everything else.
        if any(content_type.startswith(t) for t in _TEXT_TYPES) or not content_type:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def to_http_response(result: object) -> HttpResponse:
    """Interpret a function result the way HTTP APIs do for payload format 2.0."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Format 2.0 treats a non-response result as a 200 JSON body; a function error is a 500.
        if isinstance(result, dict) and "errorMessage" in result:
            return HttpResponse(
                500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            )
        return HttpResponse(200, {"content-type": "application/json"}, json.dumps(result).encode())
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return HttpResponse(int(result["statusCode"]), headers, body)
