"""Just enough Markdown to test the docs: fenced blocks, inline code, links and heading anchors.

Every page a reader meets is checked: README.md and docs/**/*.md. A fenced block is runnable when
the line right before it (blank lines aside) is `<!-- test: <runner> -->`, <runner> naming a
fixture in tests/unit/docs/conftest.py that executes the block's code against something real.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.conftest import ROOT

MARKER = re.compile(r"<!--\s*test:\s*([\w-]+)\s*-->")
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+(\S+)")


def pages() -> list[Path]:
    """Every page a newcomer reads: the front page and everything under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: where it starts, its info string, its text, its test marker."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{name(self.path)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Prose:
    """A line outside every fenced block."""

    path: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{name(self.path)}:{self.line}"


@cache
def _parse(path: Path) -> tuple[tuple[Block, ...], tuple[Prose, ...]]:
    blocks: list[Block] = []
    prose: list[Prose] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            prose.append(Prose(path, i + 1, lines[i]))
            i += 1
            continue
        fence, lang = opening.groups()
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence[0] * len(fence)):
            end += 1
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = MARKER.fullmatch(before.strip())
        blocks.append(
            Block(
                path, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n", marker.group(1) if marker else None
            )
        )
        i = end + 1
    return tuple(blocks), tuple(prose)


def blocks(path: Path) -> tuple[Block, ...]:
    return _parse(path)[0]


def prose(path: Path) -> tuple[Prose, ...]:
    return _parse(path)[1]


def inline_code(line: str) -> list[str]:
    """The inline code spans of a prose line."""
    return [m.group(2).strip() for m in _INLINE_CODE.finditer(line)]


def links(line: str) -> list[str]:
    """Link targets of a prose line (inline code removed first: `[x](y)` there is not a link)."""
    text = _INLINE_CODE.sub("", line)
    found = [m.group(1) for m in _LINK.finditer(text)]
    reference = _REFERENCE_LINK.match(text)
    return [*found, *([reference.group(1)] if reference else [])]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen."""
    text = _LINK.sub(lambda m: m.group(0)[1 : m.group(0).index("]")], heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a page, numbered as GitHub numbers repeated headings."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose(path):
        heading = _HEADING.match(line.text)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def shell_lines(block: Block) -> Iterator[str]:
    """A shell block's logical lines: continuations joined, quoted strings kept whole."""
    pending = ""
    for raw in block.text.splitlines():
        pending += raw + "\n"
        if pending.endswith("\\\n"):
            pending = pending[:-2] + " "
            continue
        # A quote left open (curl -d '{... over several lines) continues on the next line.
        if _open_quote(pending):
            continue
        yield pending.strip()
        pending = ""
    if pending.strip():
        yield pending.strip()


def _open_quote(text: str) -> bool:
    quote: str | None = None
    escaped = False
    previous = " "
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is None and ch == "#" and previous.isspace():
            return False  # the rest is a comment
        elif quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        previous = ch
    return quote is not None
