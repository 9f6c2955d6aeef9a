"""The local HTTP front with its emulators built from a changed BuiltFunction (tests only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import serve
from devtools.rie import BuiltFunction

# The emulator applies the function timeout to init too (Lambda gives init its own 10 s). On this
# shared 2-core machine two environments initialising at once under other jobs' load have been
# seen to pass 10 s, so tests that are not about timeouts give init room.
ROOMY_TIMEOUT_S = 60


def patch_front(monkeypatch: pytest.MonkeyPatch, change: Callable[[BuiltFunction], BuiltFunction]) -> None:
    """Make devtools.serve build its emulators from `change(function)`."""

    class _Built:
        @staticmethod
        def from_build(logical_id: str, build_dir: Path) -> BuiltFunction:
            return change(BuiltFunction.from_build(logical_id, build_dir))

    monkeypatch.setattr(serve, "BuiltFunction", _Built)


def roomy_init(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_front(monkeypatch, lambda fn: dataclasses.replace(fn, timeout_s=ROOMY_TIMEOUT_S))
