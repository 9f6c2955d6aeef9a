"""Streaming readers for batch files: physical lines in, bounded chunks of rows out.

Every physical line of a file (cut at "\\n", onnxlambda.batch.files) is accounted for exactly once:
as the header, as a blank line (`files.is_blank`: skipped, no row number), or as part of one row
that is either scored or rejected. A row is one record; it is numbered (1-based) in file order and
carries the line it starts on and, when it spans several, the line it ends on. A single bad row
becomes a `RejectedRow` and the rest of the file goes on; a file that cannot be read at all raises
`FileError`.

CSV records span lines only through quoted cells holding a line break. Such a record is kept only
when it parses, has the header's field count, and each cell with a line break is in a column that
may hold one (`line_break_columns`, from the manifest: an id or pass-through column, or a category
that has one; never a number) and is at most `max_text_cell_chars` long. Otherwise it is an
unbalanced quote on its first line: that one line is rejected (`malformed_csv`, its raw text as
input) and reading restarts on the next line, so a stray quote costs one row, never the rows after
it, and row numbers after it do not shift. A quote that is never closed is found at the latest
when the csv module's field limit (131,072 characters) or the end of the file is reached: what
was read past it is read again, so each line is parsed at most twice.

Values: CSV cells arrive as strings. Numeric features follow the one number rule
(onnxlambda.batch.numbers: the JSON number grammar, parsed by the API's JSON parser; an empty or
blank cell is null; anything else stays text and is `wrong_type`). Categorical cells are taken
verbatim, an empty one is null. JSON Lines values keep their JSON types, as in the API.

A reader can also read one part of a file on its own (`Span`: the distributed path cuts large
files at record boundaries, onnxlambda.batch.plan): rows and lines are then numbered as in the
whole file, and the records that start after the part's last line are left to the next part, while
a record that starts inside it is read to its end, past that line if it must be. Read from a
record boundary, a part yields exactly the rows, rejections and messages the whole file yields
for those lines (tests/unit/batch/test_distributed_property.py).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import attrgetter
from typing import Any

import numpy as np

from onnxlambda.batch.files import BLANK_CHARS, FileError, Format, is_blank
from onnxlambda.batch.numbers import is_number, parse_column
from onnxlambda.codecs import fastjson
from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import Feature, Manifest

# Default bound of a cell that holds a line break (ONNXLAMBDA_BATCH_MAX_TEXT_CELL_CHARS); the csv module's
# own field limit (131,072 characters) caps it.
TEXT_CELL_CHARS = 10_000
_BLOCK_LINES = 4096  # lines handed to the csv module per list


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


# -- CSV ----------------------------------------------------------------------------------------


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


# -- JSON Lines ---------------------------------------------------------------------------------


class JsonLinesReader:
    """One JSON object per line, parsed like an API request body (onnxlambda.codecs.fastjson);
    blank lines are skipped and not numbered."""

    def __init__(
        self, manifest: Manifest, *, chunk_rows: int, id_column: str | None, span: Span = WHOLE_FILE
    ) -> None:
        self._span = span
        self._manifest = manifest
        self._chunk_rows = chunk_rows
        # A feature that happens to be called like the id column stays a feature.
        self._id_column = id_column if id_column not in manifest.feature_names else None
        self._features = frozenset(manifest.feature_names)
        self._ignore_extra = manifest.extra_fields == "ignore"
        self.counts = LineCounts()

    def chunks(self, lines: Iterable[str]) -> Iterator[Chunk]:
        numbers: list[int] = []
        lines_of: list[int] = []
        objects: list[dict[str, Any]] = []
        originals: list[dict[str, Any]] = []
        carry: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        span = self._span
        row = span.rows_before
        read = 0  # lines of this part read
        for line_no, line in enumerate(lines, start=span.first_line):
            if not span.owns(line_no):
                break
            read += 1
            if not line.strip(BLANK_CHARS):
                self.counts.blank += 1
                continue
            row += 1
            try:
                obj = fastjson.loads(line)
            except (ValueError, RecursionError) as exc:
                msg = f"not a JSON value: {exc}" if isinstance(exc, ValueError) else "nested too deeply"
                error = FieldError(row, "(row)", "malformed_json", msg)
                rejected.append(RejectedRow(row, [error], line.rstrip("\r\n"), line_no))
            else:
                if type(obj) is not dict:
                    message = f"expected an object, got {type(obj).__name__}"
                    error = FieldError(row, "(row)", "wrong_type", message)
                    rejected.append(RejectedRow(row, [error], obj, line_no))
                else:
                    numbers.append(row)
                    lines_of.append(line_no)
                    originals.append(obj)
                    kept: dict[str, Any] = {}
                    if self._id_column is not None and self._id_column in obj:
                        obj = dict(obj)
                        kept[self._id_column] = obj.pop(self._id_column)
                    if self._ignore_extra and not obj.keys() <= self._features:
                        kept.update((k, v) for k, v in obj.items() if k not in self._features)
                    carry.append(kept)
                    objects.append(obj)
            if len(objects) + len(rejected) >= self._chunk_rows:
                yield self._chunk(numbers, lines_of, objects, originals, carry, rejected)
                numbers, lines_of, objects, originals, carry, rejected = [], [], [], [], [], []
        self.counts.total = read
        if row == span.rows_before and span == WHOLE_FILE:
            raise FileError("empty", "the file has no content")
        if objects or rejected:
            yield self._chunk(numbers, lines_of, objects, originals, carry, rejected)

    @staticmethod
    def _chunk(  # noqa: PLR0917 - the parallel lists of one chunk
        numbers: list[int],
        lines_of: list[int],
        objects: list[dict[str, Any]],
        originals: list[dict[str, Any]],
        carry: list[dict[str, Any]],
        rejected: list[RejectedRow],
    ) -> Chunk:
        return Chunk(
            numbers=numbers,
            lines=lines_of,
            objects=objects,
            carry=carry if any(carry) else None,
            raw=lambda i: originals[i],
            rejected=rejected,
        )


def reader_for(
    fmt: Format,
    manifest: Manifest,
    *,
    chunk_rows: int,
    id_column: str | None,
    max_text_cell_chars: int = TEXT_CELL_CHARS,
    span: Span = WHOLE_FILE,
) -> CsvReader | JsonLinesReader:
    if fmt == "csv":
        return CsvReader(
            manifest,
            chunk_rows=chunk_rows,
            id_column=id_column,
            max_text_cell_chars=max_text_cell_chars,
            span=span,
        )
    return JsonLinesReader(manifest, chunk_rows=chunk_rows, id_column=id_column, span=span)


__all__ = [
    "TEXT_CELL_CHARS",
    "Chunk",
    "CsvReader",
    "JsonLinesReader",
    "LineCounts",
    "RejectedRow",
    "Span",
    "line_break_columns",
    "reader_for",
]
