"""Domain errors and the one structured error body that every caller sees.

The transport maps each error to a status code through `status`; nothing here knows about HTTP
frameworks, so the API, batch and V2 paths share the same vocabulary of error codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one value: which row, which field, what kind, in words."""

    row: int | None
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass(slots=True)
class ServingError(Exception):
    """Base class: a request the service refuses, with a stable machine-readable code."""

    code: str
    message: str
    details: list[FieldError] = field(default_factory=list)
    truncated: bool = False
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": [d.to_dict() for d in self.details],
                "truncated": self.truncated,
            }
        }


def malformed(message: str, details: list[FieldError] | None = None) -> ServingError:
    """The body cannot be understood at all (not JSON, wrong top-level shape): 400."""
    return ServingError("malformed_request", message, details or [], status=400)


def invalid(details: list[FieldError], limit: int) -> ServingError:
    """Well-formed but values break the model's contract: 422 with the field-level list."""
    rows = {d.row for d in details if d.row is not None}
    message = f"{len(details)} invalid value(s)" + (f" in {len(rows)} row(s)" if rows else "")
    return ServingError(
        "validation_failed", message, details[:limit], truncated=len(details) > limit, status=422
    )


def too_large(code: str, message: str) -> ServingError:
    """Body or row count over the configured limit: 413, refused before heavy work."""
    return ServingError(code, message, status=413)


def not_found(message: str) -> ServingError:
    """No such route, model or model version: 404."""
    return ServingError("not_found", message, status=404)


def method_not_allowed(method: str, path: str, allowed: list[str]) -> ServingError:
    """A served path asked with another method: 405 (the transport adds the Allow header)."""
    return ServingError(
        "method_not_allowed", f"{method} is not served on {path}; allowed: {', '.join(allowed)}", status=405
    )


def internal(message: str = "internal error") -> ServingError:
    """A bug: logged with its stack by the transport; the caller gets this and a request id."""
    return ServingError("internal_error", message, status=500)


def not_ready(message: str) -> ServingError:
    """The model could not be loaded in this execution environment: 503."""
    return ServingError("model_not_ready", message, status=503)


class ModelLoadError(Exception):
    """The model directory is missing, corrupt, or its sha256 differs from the manifest."""
