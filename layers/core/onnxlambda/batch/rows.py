"""What the batch readers yield: chunks of parsed rows, rejected rows with every reason, the
part of a file a reader reads (`Span`), and where the lines that are no row went."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from onnxlambda.contract.errors import FieldError


@dataclass(frozen=True, slots=True)
class Span:
    """The part of a file a reader reads (default: all of it).

    Its rows are numbered after `rows_before`; its first line is line `first_line` of the file;
    records that start after `last_line` are not read (None: read to the end). A CSV part that
    does not start at line 1 is given the file's header line first, then its own lines: the
    header is numbered first_line - 1 and counted in `LineCounts.header` as usual."""

    rows_before: int = 0
    first_line: int = 1
    last_line: int | None = None

    def owns(self, line: int) -> bool:
        """Whether a record starting on `line` belongs to this part."""
        return self.last_line is None or line <= self.last_line

    def room(self, line: int, n: int) -> int:
        """At most n, and no more than the lines this part owns from `line` on."""
        return n if self.last_line is None else max(0, min(n, self.last_line - line + 1))

    def total(self, base: int, pulled: int) -> int:
        """Lines of the part counted from line `base`, when `pulled` lines were read from there
        (a part may read past its last line to finish a record that started inside it)."""
        return pulled if self.last_line is None else min(pulled, self.last_line - base + 1)


WHOLE_FILE = Span()


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that failed before or during validation, with everything needed to find and fix it:
    the line it starts on, the line it ends on when it spans several, every reason, the raw input
    (a dict of cells by column, the cells of a record that has the wrong count, or the text of a
    line that could not be parsed)."""

    row: int
    errors: list[FieldError]
    input: object
    line: int | None = None
    end_line: int | None = None

    @property
    def span(self) -> int:
        """Physical lines this row covers."""
        if self.line is None or self.end_line is None:
            return 1
        return self.end_line - self.line + 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row}
        if self.line is not None:
            out["line"] = self.line
        if self.end_line is not None:
            out["end_line"] = self.end_line
        out["errors"] = [{"field": e.field, "code": e.code, "message": e.message} for e in self.errors]
        out["input"] = self.input
        return out


@dataclass(slots=True)
class Chunk:
    """Up to `chunk_rows` rows: columns (CSV) or objects (JSONL) for the validator, what each
    output row carries through (id, pass-through fields), and rows already rejected.

    Parsed row i is row `numbers[i]` of the file, starting on line `lines[i]` and covering
    `spans[i]` physical lines (`spans` is None when every row is one line)."""

    numbers: list[int]
    lines: list[int]
    spans: list[int] | None = None
    columns: dict[str, list[Any]] | None = None
    objects: list[dict[str, Any]] | None = None
    carry: list[dict[str, Any]] | None = None
    raw: Callable[[int], object] = lambda i: None
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.numbers)

    def end_line(self, i: int) -> int | None:
        """The last line of parsed row i when it spans several, else None."""
        if self.spans is None or self.spans[i] == 1:
            return None
        return self.lines[i] + self.spans[i] - 1

    def lines_of(self, indices: Collection[int]) -> int:
        """Physical lines covered by the parsed rows at `indices`."""
        if self.spans is None:
            return len(indices)
        spans = self.spans
        return sum(spans[i] for i in indices)


@dataclass(slots=True)
class LineCounts:
    """Where a file's physical lines went, besides the rows (filled while reading)."""

    total: int = 0
    header: int = 0
    blank: int = 0


__all__ = ["WHOLE_FILE", "Chunk", "LineCounts", "RejectedRow", "Span"]
