"""What the pages point at exists: relative links and their anchors, repository paths, test ids,
Python modules and attributes, and environment variables.

A renamed file, a moved module, a renamed test or an un-prefixed setting fails here, naming the
page and line that still says the old thing.
"""

from __future__ import annotations

import importlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onnxlambda.settings import BY_NAME, PREFIX
from tests.conftest import ROOT
from tests.unit.docs import markdown

# A path in inline code: segments of word characters, dots and dashes, optionally a pytest id.
_PATH = re.compile(r"(?:\./)?((?:[\w.-]+/)+[\w.-]*)(?:::([\w\[\]-]+))?")
_MODULE = re.compile(r"(onnxlambda|onnxlambda_cli)(?:\.\w+)+")
_VARIABLE = re.compile(r"\b(ONNXLAMBDA_[A-Z0-9_]*[A-Z0-9])\b")
# The runtime and CLI packages are often named from inside their source roots.
_PACKAGE_ROOTS = {"onnxlambda": "layers/core/onnxlambda", "onnxlambda_cli": "cli/onnxlambda_cli"}


def link_targets(page: Path) -> Iterator[tuple[str, str]]:
    for line in markdown.prose(page):
        for target in markdown.links(line.text):
            yield line.where, target


def broken_link(page: Path, target: str) -> str | None:
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, s3: ... not checked offline
        return None
    path_part, _, anchor = target.partition("#")
    resolved = (page.parent / path_part).resolve() if path_part else page
    if not resolved.exists():
        return f"no file {path_part}"
    if anchor and resolved.suffix == ".md" and anchor not in markdown.anchors(resolved):
        return f"no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", markdown.pages(), ids=markdown.name)
def test_every_relative_link_resolves(page: Path) -> None:
    # GIVEN every link on the page THEN each relative one reaches a file, and its heading if it names one
    broken = {
        f"{where} ({target})": why
        for where, target in link_targets(page)
        if (why := broken_link(page, target))
    }
    assert broken == {}


def repository_path(span: str) -> tuple[Path, str | None] | None:
    """The repository file a code span names, with the test it names after `::`, if any."""
    found = _PATH.fullmatch(span)
    if found is None:
        return None
    path, test = found.groups()
    first = path.split("/", 1)[0]
    if first in _PACKAGE_ROOTS:
        path = _PACKAGE_ROOTS[first] + path[len(first) :]
    elif not (ROOT / first).exists():
        return None  # not a path in this repository (scored/, capture/, s3 keys ...)
    return ROOT / path, test


def spans(page: Path) -> Iterator[tuple[str, str]]:
    for line in markdown.prose(page):
        for span in markdown.inline_code(line.text):
            yield line.where, span


def ignored(path: Path, directory: bool) -> bool:
    """A path git ignores: made by a build or a run (models/.selected, bench/out/), never committed."""
    name = str(path.relative_to(ROOT)) + ("/" if directory else "")
    check = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=ROOT, check=False)
    return check.returncode == 0


def missing_path(span: str) -> str | None:
    named = repository_path(span)
    if named is None:
        return None
    path, test = named
    if not path.exists() and not ignored(path, span.endswith("/")):
        return "no such file or directory"
    if test is not None:
        function = test.split("[", 1)[0]
        if not re.search(rf"^\s*def {re.escape(function)}\(", path.read_text(), re.M):
            return f"no test {function} in it"
    return None


@pytest.mark.parametrize("page", markdown.pages(), ids=markdown.name)
def test_every_repository_path_exists(page: Path) -> None:
    # GIVEN every `path/in/the/repository` (and `file.py::test_name`) the page names in inline code
    # THEN the file exists, and so does the test
    missing = {f"{where} `{span}`": why for where, span in spans(page) if (why := missing_path(span))}
    assert missing == {}


def unresolved_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return f"{'.'.join(parts[:cut])} has no {attribute}"
            target = getattr(target, attribute)
        return None
    return "no such module"


@pytest.mark.parametrize("page", markdown.pages(), ids=markdown.name)
def test_every_python_name_resolves(page: Path) -> None:
    # GIVEN every `onnxlambda.x.y` / `onnxlambda_cli.x.y` the page names
    named = {(where, m.group(0)) for where, span in spans(page) for m in [_MODULE.fullmatch(span)] if m}
    # THEN each is a module, or an attribute of one
    wrong = {
        f"{where} `{dotted}`": why for where, dotted in sorted(named) if (why := unresolved_module(dotted))
    }
    assert wrong == {}


def variables(page: Path) -> Iterator[tuple[str, str]]:
    history = page.is_relative_to(ROOT / "docs" / "decisions")  # decision records may quote old names
    for where, span in spans(page):
        for found in _VARIABLE.finditer(span):
            yield where, found.group(1)
        if f"{PREFIX}{span}" in BY_NAME and not history:
            yield where, span  # the name without its prefix: the old spelling
    for block in markdown.blocks(page):
        for found in _VARIABLE.finditer(block.text):
            yield block.where, found.group(1)


@pytest.mark.parametrize("page", markdown.pages(), ids=markdown.name)
def test_every_environment_variable_is_a_catalogued_setting(page: Path) -> None:
    # GIVEN every ONNXLAMBDA_* variable the page names (and, outside decision records, any setting
    # named without its prefix)
    # THEN each is in the settings catalogue under its full name (docs/reference/settings.md)
    unknown = {f"{where} {name}" for where, name in variables(page) if name not in BY_NAME}
    assert unknown == set()
