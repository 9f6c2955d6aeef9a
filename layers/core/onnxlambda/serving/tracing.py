"""A Powertools Tracer that costs nothing at import when SDK tracing is off.

`Tracer()` imports the X-Ray SDK (and through it botocore) even when tracing is disabled: about
50 ms of every cold start for a tracer that records nothing. With tracing off (the template's
default, POWERTOOLS_TRACE_DISABLED=true, and always outside Lambda) the tracer here gets a no-op
provider instead, so `@tracer.capture_lambda_handler` and `tracer.capture_method` keep working and
cost a function call. With SDK tracing on, it is the plain Powertools Tracer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from onnxlambda import settings

_TRUTHY = frozenset({"1", "y", "yes", "t", "true", "on"})


def sdk_tracing_enabled() -> bool:
    """Powertools' own rule: off if POWERTOOLS_TRACE_DISABLED is truthy, outside Lambda, or in SAM local."""
    if str(settings.get("POWERTOOLS_TRACE_DISABLED")).strip().lower() in _TRUTHY:
        return False
    if not settings.get("LAMBDA_TASK_ROOT"):
        return False
    return not (settings.get("AWS_SAM_LOCAL") or settings.get("AWS_CHALICE_CLI_MODE"))


def make_tracer() -> Tracer:
    if sdk_tracing_enabled():
        return Tracer()
    return Tracer(disabled=True, auto_patch=False, provider=NoOpProvider())


class NoOpSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        return None


_SEGMENT = NoOpSegment()


class NoOpProvider(BaseProvider):
    """Records nothing and imports nothing."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _SEGMENT

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _SEGMENT

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None
