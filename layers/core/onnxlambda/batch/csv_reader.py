"""The CSV reader: a header row, columns matched by name, records that may span lines only
through quoted cells where the manifest allows a line break, and every physical line accounted
for (the rules: onnxlambda.batch.readers).

Over ~400 lines on purpose: one reader's state machine (lines, the csv module's cursor, rows,
the restart after an unbalanced quote) reads best in one place.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import attrgetter
from typing import Any

import numpy as np

from onnxlambda.batch.files import FileError, is_blank
from onnxlambda.batch.numbers import is_number, parse_column
from onnxlambda.batch.rows import WHOLE_FILE, Chunk, LineCounts, RejectedRow, Span
from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import Feature, Manifest

# Default bound of a cell that holds a line break (ONNXLAMBDA_BATCH_MAX_TEXT_CELL_CHARS); the csv
# module's own field limit (131,072 characters) caps it.
TEXT_CELL_CHARS = 10_000
_BLOCK_LINES = 4096  # lines handed to the csv module per list


def line_break_columns(manifest: Manifest, header: list[str]) -> list[bool]:
    """Per header column, whether a cell of it may hold a line break (and so make its record span
    lines): never a numeric feature's, a categorical feature's only if one of its categories has
    one, any other column's (id, pass-through text) always."""
    by_name: dict[str, Feature] = {f.name: f for f in manifest.features}
    allowed = []
    for name in header:
        f = by_name.get(name)
        if f is None:
            allowed.append(True)
        elif f.is_categorical:
            allowed.append(any("\n" in c for c in f.categories or ()))
        else:
            allowed.append(False)
    return allowed


_EMPTY_IS_NULL: dict[str, str | None] = {"": None}


def _strings(cells: Sequence[str]) -> list[str | None]:
    """Categorical cells verbatim, an empty one null (dict.get(c, c) over the column, in C)."""
    return list(map(_EMPTY_IS_NULL.get, cells, cells))


def _looks_like_data(header: list[str], manifest: Manifest) -> bool:
    categories = {c for f in manifest.features for c in (f.categories or ())}
    return any(cell in categories or is_number(cell) for cell in header if cell)


class _Failure:
    """A record the csv module refused (its message); deliberately not a list."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Lines:
    """A file's physical lines for the csv module, numbered from 1, kept from the first line not
    yet settled so that reading can restart at any of them."""

    def __init__(self, lines: Iterable[str], first: int = 1) -> None:
        it = iter(lines)
        self._blocks: Iterator[list[str]] = iter(lambda: list(islice(it, _BLOCK_LINES)), [])
        self._kept: list[str] = []
        self._base = first  # line number of _kept[0]
        self.pulled = 0  # lines read from the file so far

    def feed(self, start: int) -> Iterator[list[str]]:
        """Lists of lines from line `start` on: the kept ones first, then new ones (kept too)."""
        kept = self._kept[start - self._base :]
        if kept:
            yield kept
        for block in self._blocks:
            self._kept += block
            self.pulled += len(block)
            yield block

    def lines(self, first: int, n: int) -> list[str]:
        """Up to n lines from line `first` on, read from the file as needed (and kept)."""
        need = first - self._base + n
        while len(self._kept) < need:
            block = next(self._blocks, None)
            if block is None:
                break
            self._kept += block
            self.pulled += len(block)
        start = first - self._base
        return self._kept[start : start + n]

    def release(self, before: int) -> None:
        """Forget the lines before line `before`: they can no longer be re-read."""
        drop = before - self._base
        if drop > 0:
            del self._kept[:drop]
            self._base = before

    def text(self, first: int, last: int) -> str:
        base = self._base
        return "".join(self._kept[first - base : last - base + 1])


_Record = list[str] | _Failure
_Item = tuple[_Record, int]  # a record (or failure) and the line it ends on


class _Cursor:
    """A csv reader started at one line. Plain, it yields records at C speed and counts the
    lines they used; tracking, each record also comes with the line it ends on (a zip with a
    C-level getter of line_num), which is needed only when some record spans lines."""

    def __init__(self, lines: _Lines, start: int, *, tracking: bool = False) -> None:
        self.reader = csv.reader(chain.from_iterable(lines.feed(start)), strict=True)
        self.tracking = tracking
        self._records: Iterator[Any] = (
            zip(self.reader, map(attrgetter("line_num"), repeat(self.reader)), strict=False)
            if tracking
            else self.reader
        )
        self.offset = start - 1  # absolute line number = offset + reader.line_num
        self.next_line = start  # the line the next record starts on

    def take(self, n: int) -> tuple[list[Any], int, bool]:
        """Up to n records (tracking: (record, relative end line) pairs), the lines they used,
        and whether any is a failure. A record the csv module cannot parse becomes a _Failure
        and reading resumes on the following line, as the csv module does (list.extend keeps
        what it appended before the error)."""
        items: list[Any] = []
        before = self.reader.line_num
        failed = False
        while len(items) < n:
            try:
                items.extend(islice(self._records, n - len(items)))
            except csv.Error as exc:
                failure = _Failure(str(exc))
                items.append((failure, self.reader.line_num) if self.tracking else failure)
                failed = True
            else:
                break
        return items, self.reader.line_num - before, failed


@dataclass(slots=True)
class _Rows:
    """The rows of one chunk: their numbers, lines and spans, and their cells column by column
    (filled from split text or from csv records)."""

    width: int
    keep: bool = True  # False: rows are counted and placed, their cells not kept
    numbers: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    spans: list[int] | None = None
    cols: list[list[str]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cols = [[] for _ in range(self.width)]

    @property
    def count(self) -> int:
        return len(self.numbers) + len(self.rejected)

    def add_columns(self, columns: Sequence[Sequence[str]]) -> None:
        if not self.keep:
            return
        for col, more in zip(self.cols, columns, strict=True):
            col.extend(more)


_LONE_CR = re.compile(r"\r(?!\n)")


def _plain_records(lines: list[str], width: int) -> tuple[int, list[list[str]]]:
    """How many of `lines` (from the first) are plain records, and their columns.

    A plain line has no quote character, no CR but in a final CRLF, and exactly width - 1
    commas; for such lines the csv module does nothing but split at the commas, so they are
    split all at once here: one join, one split and a slice per column, no Python call per
    line or per cell. The csv module reads the rest (quotes, blank lines, wrong counts)."""
    text = "".join(lines)
    k = len(lines)
    for found in (text.find('"'), _first(_LONE_CR.search(text))):
        if found >= 0:
            k = min(k, text.count("\n", 0, found))  # the line holding it
    commas = np.fromiter(map(str.count, lines[:k], repeat(",")), dtype=np.int64, count=k)
    wrong = np.flatnonzero(commas != width - 1)
    if wrong.size:
        k = int(wrong[0])
    if not k:
        return 0, []
    if k < len(lines):
        text = text[: sum(map(len, lines[:k]))]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    cells = text.replace("\n", ",").split(",")
    if text.endswith("\n"):
        cells.pop()  # after the last line end
    return k, [cells[j::width] for j in range(width)]


def _first(match: re.Match[str] | None) -> int:
    return match.start() if match is not None else -1


class CsvReader:
    """CSV with a header row; columns matched by name, any order."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        chunk_rows: int,
        id_column: str | None,
        max_text_cell_chars: int = TEXT_CELL_CHARS,
        span: Span = WHOLE_FILE,
        cells: bool = True,
    ) -> None:
        self._manifest = manifest
        self._chunk_rows = chunk_rows
        # A feature that happens to be called like the id column stays a feature.
        self._id_column = id_column if id_column not in manifest.feature_names else None
        self._text_cell_chars = max_text_cell_chars
        self._span = span
        # False: where rows start and end, and why some are rejected, without converting any
        # cell (chunks carry no columns): how the distributed planner finds record boundaries.
        self._cells = cells
        self.header: list[str] = []
        self.carry_columns: list[str] = []
        self.counts = LineCounts()
        self._line_breaks: list[bool] = []
        self._row = span.rows_before
        self.header_line = 0  # the line the header is on, once read

    def _check_header(self, header: list[str]) -> None:
        names = self._manifest.feature_names
        if not any(h for h in header):
            raise FileError(
                "no_header", "the first line is empty; a header row naming the columns is required"
            )
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise FileError("duplicate_columns", f"columns named more than once: {', '.join(dupes)}")
        missing = [n for n in names if n not in header]
        if missing and len(missing) == len(names) and _looks_like_data(header, self._manifest):
            raise FileError(
                "no_header",
                f"the first line looks like data; a header row is required with: {', '.join(names)}",
            )
        if missing:
            raise FileError(
                "missing_columns", f"columns required by the model are missing: {', '.join(missing)}"
            )
        extra = [h for h in header if h not in names and h != self._id_column]
        if extra and self._manifest.extra_fields == "reject":
            raise FileError(
                "unknown_columns",
                f"columns that are not features of this model: {', '.join(extra)} "
                f"(only {self._id_column!r} may be added, as the row id)",
            )
        self.carry_columns = [h for h in header if h == self._id_column] + extra

    def _read_header(self, lines: _Lines, cursor: _Cursor) -> list[str]:
        """The first record that is not a blank line; blank lines before it are counted."""
        while True:
            items, _, _ = cursor.take(1)
            if not items:
                raise FileError("empty", "the file has no content")
            [(record, end)] = items
            start, end = cursor.next_line, cursor.offset + end
            cursor.next_line = end + 1
            if isinstance(record, _Failure):
                raise FileError("corrupt", f"the header (line {start}) is not valid CSV: {record.message}")
            if start == end and (not record or (len(record) == 1 and is_blank(lines.text(start, end)))):
                self.counts.blank += 1
                continue
            if start < end:  # column names hold no line breaks: a quote in it is not closed
                raise FileError(
                    "corrupt",
                    f"the header starting on line {start} runs to line {end}: an unbalanced quote",
                )
            self.counts.header = end - start + 1
            return [h.strip() for h in record]

    def chunks(self, lines: Iterable[str]) -> Iterator[Chunk]:
        span = self._span
        base = span.first_line - 1 if span.first_line > 1 else 1  # the header's line number
        source = _Lines(lines, base)
        cursor = _Cursor(source, base, tracking=True)
        header = self._read_header(source, cursor)
        self.header_line = cursor.next_line - 1
        self._check_header(header)
        self.header = header
        self._line_breaks = line_break_columns(self._manifest, header)
        feature_idx = [header.index(f.name) for f in self._manifest.features]
        carry_idx = [header.index(c) for c in self.carry_columns]
        next_line = cursor.next_line
        while True:
            source.release(next_line)
            rows = _Rows(len(header), keep=self._cells)
            while rows.count < self._chunk_rows and span.owns(next_line):
                next_line, read = self._read(source, next_line, self._chunk_rows - rows.count, rows)
                if not read:
                    break
            if rows.count:
                yield self._chunk(rows, feature_idx, carry_idx)
            if rows.count < self._chunk_rows or not span.owns(next_line):  # the file (or part) ended
                self.counts.total = span.total(base, source.pulled)
                return

    def _read(self, source: _Lines, first: int, n: int, rows: _Rows) -> tuple[int, bool]:
        """Read up to n records from line `first` into `rows`; return the line to go on from,
        and False at the end of the file. Plain lines are split as text (`_plain_records`);
        from the first other line on, the csv module reads; records are taken as a whole when
        each is one line of the header's width, else sorted one by one; and if some record
        spans lines, the same records are read again with their end lines first."""
        width = len(self.header)
        n = self._span.room(first, n)
        lines = source.lines(first, n)
        if not lines:
            return first, False
        k, columns = _plain_records(lines, width) if width > 1 else (0, [])
        if k:
            self._add(rows, first, k, columns)
            return first + k, True
        cursor = _Cursor(source, first)
        records, used, failed = cursor.take(n)
        if used != len(records):  # a record spans lines: read them again, tracking their ends
            cursor = _Cursor(source, first, tracking=True)
            items, _, _ = cursor.take(len(records))
            restart = self._sort([(r, cursor.offset + end) for r, end in items], source, cursor, rows)
            return restart or cursor.next_line, True
        if not failed and width > 1 and set(map(len, records)) == {width}:
            self._add(rows, first, len(records), list(zip(*records, strict=True)))
            return first + len(records), True
        ends = range(first, first + len(records))
        restart = self._sort(list(zip(records, ends, strict=True)), source, cursor, rows)
        return restart or cursor.next_line, True

    def _add(self, rows: _Rows, first: int, k: int, columns: Sequence[Sequence[str]]) -> None:
        """k rows of one line each, from line `first` on, given column by column."""
        rows.numbers += range(self._row + 1, self._row + 1 + k)
        rows.lines += range(first, first + k)
        if rows.spans is not None:
            rows.spans += [1] * k
        rows.add_columns(columns)
        self._row += k

    def _sort(self, items: list[_Item], source: _Lines, cursor: _Cursor, rows: _Rows) -> int | None:
        """Records (with the absolute line each ends on) one by one: blank lines, rows,
        rejections. On an unbalanced quote, reject its first line and return the line to
        restart reading on (the rest of `items` was read through the bad quote and is dropped);
        else None."""
        good: list[list[str]] = []
        try:
            return self._sort_into(items, source, cursor, rows, good)
        finally:
            if good:
                rows.add_columns(list(zip(*good, strict=True)))

    def _sort_into(
        self, items: list[_Item], source: _Lines, cursor: _Cursor, rows: _Rows, good: list[list[str]]
    ) -> int | None:
        width = len(self.header)
        for record, end in items:
            start = cursor.next_line
            if not self._span.owns(start):
                return start  # read to finish the part's last record; the next part's from here
            multi = end > start
            why = self._unbalanced(record) if multi else None
            if why is not None:
                self._reject(
                    rows,
                    start,
                    "malformed_csv",
                    f"unbalanced quote: a quoted field opened on this line runs to line {end} ({why}); "
                    "this line is rejected alone and reading resumes on the next line",
                    source.text(start, start).rstrip("\r\n"),
                )
                return start + 1
            cursor.next_line = end + 1
            if isinstance(record, _Failure):
                raw = source.text(start, start).rstrip("\r\n")
                self._reject(rows, start, "malformed_csv", record.message, raw)
            elif not multi and (not record or (len(record) == 1 and is_blank(source.text(start, start)))):
                self.counts.blank += 1
            elif len(record) != width:
                message = f"{len(record)} fields, the header has {width}"
                self._reject(rows, start, "wrong_field_count", message, record)
            else:
                self._row += 1
                rows.numbers.append(self._row)
                rows.lines.append(start)
                if multi and rows.spans is None:
                    rows.spans = [1] * (len(rows.numbers) - 1)
                if rows.spans is not None:
                    rows.spans.append(end - start + 1)
                good.append(record)
        return None

    def _unbalanced(self, record: list[str] | _Failure) -> str | None:
        """Why a record that spans lines cannot be one (see the module docstring), or None."""
        if isinstance(record, _Failure):
            return record.message
        if len(record) != len(self.header):
            return f"{len(record)} fields, the header has {len(self.header)}"
        for name, cell, allowed in zip(self.header, record, self._line_breaks, strict=True):
            if "\n" in cell and not allowed:
                return f"a line break inside {name!r}, which cannot hold one"
            if "\n" in cell and len(cell) > self._text_cell_chars:
                return f"{name!r} would be {len(cell)} characters, over {self._text_cell_chars}"
        return None

    def _reject(self, rows: _Rows, line: int, code: str, message: str, raw: object) -> None:
        self._row += 1
        error = FieldError(self._row, "(row)", code, message)
        rows.rejected.append(RejectedRow(self._row, [error], raw, line))

    def _chunk(self, rows: _Rows, feature_idx: list[int], carry_idx: list[int]) -> Chunk:
        if not self._cells:
            return Chunk(numbers=rows.numbers, lines=rows.lines, spans=rows.spans, rejected=rows.rejected)
        cols = rows.cols
        columns: dict[str, list[Any]] = {}
        for f, i in zip(self._manifest.features, feature_idx, strict=True):
            cells = cols[i]
            columns[f.name] = _strings(cells) if f.is_categorical else parse_column(cells)
        carry = None
        if carry_idx and rows.numbers:
            names = self.carry_columns
            carry = [
                dict(zip(names, vals, strict=True))
                for vals in zip(*(cols[i] for i in carry_idx), strict=True)
            ]
        header = self.header
        return Chunk(
            numbers=rows.numbers,
            lines=rows.lines,
            spans=rows.spans,
            columns=columns,
            carry=carry,
            raw=lambda i: {name: col[i] for name, col in zip(header, cols, strict=True)},
            rejected=rows.rejected,
        )


__all__ = ["TEXT_CELL_CHARS", "CsvReader", "line_break_columns"]
