"""Integration fixtures: the `sam build` output, run under the Lambda Runtime Interface Emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.rie import BUILD_DIR, BuiltFunction, EmulatedFunction
from tests.conftest import ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """The sam build output; built here if `make build` has not run yet."""
    if not (BUILD_DIR / "template.yaml").exists():
        subprocess.run(["make", "build"], cwd=ROOT, check=True)
    return BUILD_DIR


@pytest.fixture(scope="session")
def api_function(build_dir: Path) -> BuiltFunction:
    return BuiltFunction.from_build("ApiFunction", build_dir)


@pytest.fixture(scope="session")
def api(api_function: BuiltFunction) -> Iterator[EmulatedFunction]:
    """One emulated execution environment for the whole session: cold once, then warm."""
    with EmulatedFunction(api_function) as emulator:
        yield emulator
