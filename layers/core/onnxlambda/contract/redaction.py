"""Sensitive fields: their values never leave the request, not in logs, error bodies or captures.

Configured per deployment (`ONNXLAMBDA_REDACT_FIELDS`, a comma-separated list of feature names, from the
template's RedactFields parameter). The API itself logs counts and codes only; what can carry a
value is a validation error's message (`'x' is not one of ...`, `x=7 is outside ...`), so every
ServingError leaving the core goes through `Redactor.error`, and anything that captures rows
(data capture, drift samples, batch error files) goes through `Redactor.row`.

The error body returned to the caller is redacted too: error bodies end up in client logs,
proxies and support tickets, and the row, field and code are enough to fix the request.

An unexpected exception's message is the one place left where a value could slip into a log
(`ValueError: could not convert 'x'`): with redaction configured, `WithholdExceptionMessages`
keeps the traceback's frames and the exception's type, and drops its message and chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from onnxlambda.contract.errors import FieldError, ServingError

REDACTED = "[REDACTED]"


def parse_fields(raw: str | None) -> frozenset[str]:
    """`"a, b,,c"` -> {"a", "b", "c"}."""
    return frozenset(name.strip() for name in (raw or "").split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class Redactor:
    fields: frozenset[str] = frozenset()

    @classmethod
    def of(cls, fields: Iterable[str]) -> Redactor:
        return cls(frozenset(fields))

    def __bool__(self) -> bool:
        return bool(self.fields)

    def detail(self, detail: FieldError) -> FieldError:
        if detail.field not in self.fields:
            return detail
        return replace(detail, message=f"{detail.field!r}: invalid value ({detail.code}); value redacted")

    def error(self, err: ServingError) -> ServingError:
        """The same error with every message about a redacted field's value replaced."""
        if not self.fields or not any(d.field in self.fields for d in err.details):
            return err
        return ServingError(
            err.code,
            err.message,
            [self.detail(d) for d in err.details],
            truncated=err.truncated,
            status=err.status,
        )

    def row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of one input row safe to log or capture."""
        return {k: (REDACTED if k in self.fields and v is not None else v) for k, v in row.items()}


class WithheldError(Exception):
    """Stands in, in a log record, for an exception whose message might quote request values."""


class WithholdExceptionMessages(logging.Filter):
    """Logging filter: while `active()`, log records carry exception frames and types, not messages."""

    def __init__(self, active: Callable[[], bool]) -> None:
        super().__init__()
        self.active = active

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and self.active():
            exc = record.exc_info[1]
            name = f"{type(exc).__module__}.{type(exc).__qualname__}"
            stand_in = WithheldError(f"{name}: message withheld (sensitive fields are configured)")
            record.exc_info = (WithheldError, stand_in, record.exc_info[2])
            record.exc_text = None
        return True


__all__ = ["REDACTED", "Redactor", "WithheldError", "WithholdExceptionMessages", "parse_fields"]
