"""Documented code runs, and documented commands exist.

(a) Every ```python block of README.md and docs/**/*.md is runnable: marked with
    `<!-- test: <runner> -->` and executed by that runner (tests/unit/docs/conftest.py).
(b) Every `make <target>` and `onnxlambda <command>` a page shows, in a shell block or inline
    code, names a Makefile target / a command of the CLI's table, with options and make variables
    that exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from onnxlambda_cli.__main__ import COMMANDS
from tests.conftest import ROOT
from tests.unit.docs import markdown

SHELL = {"bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", "$("}


def python_blocks() -> list[markdown.Block]:
    return [b for page in markdown.pages() for b in markdown.blocks(page) if b.lang in {"python", "py"}]


def runnable() -> list[markdown.Block]:
    return [b for b in python_blocks() if b.marker is not None]


def test_every_python_block_is_runnable() -> None:
    # GIVEN every python block on every page THEN each names the runner that executes it
    unmarked = [b.where for b in python_blocks() if b.marker is None]
    assert unmarked == [], "mark each with <!-- test: <runner> --> (tests/unit/docs/conftest.py)"


@pytest.mark.parametrize("block", runnable(), ids=lambda b: f"{b.where}-{b.marker}")
def test_runnable_snippet(block: markdown.Block, request: pytest.FixtureRequest) -> None:
    # GIVEN a python block marked runnable WHEN its runner executes it THEN the runner's checks hold
    runner = request.getfixturevalue(str(block.marker))
    runner(block.text)


# -- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    where: str
    program: str  # "make" or "onnxlambda"
    words: tuple[str, ...]  # the arguments, operators excluded


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes in an inline span: read it word by word
        return line.split()


def commands_in(line: str, where: str) -> Iterator[Command]:
    """`make ...` and `onnxlambda ...` invocations at command position in one shell line."""
    words = _words(line)
    start = True
    i = 0
    while i < len(words):
        word = words[i]
        if word in OPERATORS or word.endswith(("$(", "`")):
            start = True
        elif start and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word):
            pass  # an environment assignment before the command
        elif start:
            program = Path(word.lstrip("$(`")).name
            if program in {"make", "onnxlambda"}:
                args = []
                for arg in words[i + 1 :]:
                    if arg in OPERATORS:
                        break
                    args.append(arg)
                # `onnxlambda import: error: ...` quotes an output, not a command
                if not args or not args[0].endswith(":"):
                    yield Command(where, program, tuple(args))
            start = False
        i += 1


def documented_commands() -> list[Command]:
    found: list[Command] = []
    for page in markdown.pages():
        for block in markdown.blocks(page):
            if block.lang in SHELL:
                for line in markdown.shell_lines(block):
                    found += commands_in(line, block.where)
        for prose in markdown.prose(page):
            for span in markdown.inline_code(prose.text):
                if re.match(r"(\S*/)?(make|onnxlambda) [a-z]", span):
                    found += commands_in(span, prose.where)
    return found


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-z][\w-]*):(?!=)", text, re.M))


def make_variable_used(name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", (ROOT / "Makefile").read_text()) is not None


def cli_source(command: str) -> str:
    module = COMMANDS[command][0]
    relative = Path("cli", *module.split("."))
    path = ROOT / relative.with_suffix(".py")
    text = path.read_text() if path.exists() else (ROOT / relative / "__init__.py").read_text()
    if command == "release":  # `onnxlambda release stamp` is parsed by the stamp module
        text += (ROOT / "cli/onnxlambda_cli/stamp.py").read_text()
    return text


def problems(command: Command) -> list[str]:
    found: list[str] = []
    if command.program == "make":
        targets = [w for w in command.words if not w.startswith("-") and "=" not in w]
        variables = [w.split("=", 1)[0] for w in command.words if re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)]
        found += [f"no Makefile target {t!r}" for t in targets[:1] if t not in make_targets()]
        found += [f"the Makefile never reads {v}" for v in variables if not make_variable_used(v)]
        return found
    if not command.words or command.words[0] not in COMMANDS:
        return [f"no onnxlambda command {command.words[:1]}"]
    name, *rest = command.words
    source = cli_source(name)
    if name == "release" and rest and not rest[0].startswith("-"):
        subcommand = rest[0].split("|")[0]
        if f'add_parser("{subcommand}"' not in source:
            found.append(f"no `onnxlambda release {subcommand}`")
    for option in (w.split("=", 1)[0] for w in rest if w.startswith("--")):
        if f'"{option}"' not in source:
            found.append(f"`onnxlambda {name}` has no option {option}")
    return found


def test_the_pages_show_commands_at_all() -> None:
    # GIVEN the pages THEN the check below sees the commands they teach (a parser gone blind fails here)
    seen = {(c.program, c.words[0]) for c in documented_commands() if c.words}
    assert {("make", "serve"), ("make", "test"), ("make", "import"), ("onnxlambda", "diff")} <= seen


@pytest.mark.parametrize("page", markdown.pages(), ids=markdown.name)
def test_every_documented_command_exists(page: Path) -> None:
    # GIVEN every make target and onnxlambda command the page shows
    commands = [c for c in documented_commands() if c.where.startswith(markdown.name(page) + ":")]
    # THEN each target is in the Makefile, each command in the CLI's table, with options it reads
    wrong = {f"{c.where} {c.program} {' '.join(c.words)}": p for c in commands if (p := problems(c))}
    assert wrong == {}
