"""Streaming readers for batch files: lines in, bounded chunks of rows out.

A single bad row becomes a `RejectedRow` and the rest of the file goes on; a file that cannot be
read at all raises `FileError` (onnxlambda.batch.files).

CSV values arrive as strings and are converted by the manifest's dtype before validation:
an empty (or blank) cell is null; numeric cells go through `float()` (`int()` first for int64);
a cell that does not parse stays a string, which the validator reports as `wrong_type`.
Categorical cells are taken verbatim. JSON Lines values keep their JSON types, as in the API.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

from onnxlambda.batch.files import FileError, Format
from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import Manifest


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that failed before or during validation, with everything needed to find and fix it."""

    row: int
    errors: list[FieldError]
    input: object
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row}
        if self.line is not None:
            out["line"] = self.line
        out["errors"] = [{"field": e.field, "code": e.code, "message": e.message} for e in self.errors]
        out["input"] = self.input
        return out


@dataclass(slots=True)
class Chunk:
    """Up to `chunk_rows` parsed rows: columns (CSV) or objects (JSONL) for the validator, what
    each output row carries through (id, pass-through fields), and rows already rejected."""

    numbers: list[int]  # 1-based row number of each parsed row
    columns: dict[str, list[Any]] | None = None
    objects: list[dict[str, Any]] | None = None
    carry: list[dict[str, Any]] | None = None
    raw: Callable[[int], object] = lambda i: None
    lines: list[int] | None = None
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.numbers)


# -- CSV ----------------------------------------------------------------------------------------


def _numbers(cells: tuple[str, ...], integer: bool) -> list[Any]:
    if not integer:
        try:  # the common case in C: every cell a float or empty
            return [float(c) if c else None for c in cells]
        except ValueError:
            pass
    return [_number(c, integer) for c in cells]


def _number(cell: str, integer: bool) -> Any:
    if not cell.strip():
        return None
    if integer:
        try:
            return int(cell)
        except ValueError:
            pass
    try:
        return float(cell)
    except ValueError:
        return cell  # left a string: the validator reports wrong_type


def _strings(cells: tuple[str, ...]) -> list[str | None]:
    return [c if c else None for c in cells]


def _looks_like_data(header: list[str], manifest: Manifest) -> bool:
    categories = {c for f in manifest.features for c in (f.categories or ())}
    for cell in header:
        if cell in categories:
            return True
        try:
            float(cell)
        except ValueError:
            continue
        return True
    return False


@dataclass(frozen=True, slots=True)
class _CsvFailure:
    message: str
    line: int


def _next_batch(reader: Any, size: int) -> list[list[str] | _CsvFailure]:
    """Up to `size` records, read in C (list.extend over islice). A record the csv module cannot
    parse (bad quoting, a field over the size limit) becomes a marker and reading resumes:
    list.extend keeps what it appended before the error."""
    batch: list[list[str] | _CsvFailure] = []
    while len(batch) < size:
        try:
            batch.extend(islice(reader, size - len(batch)))
        except csv.Error as exc:
            batch.append(_CsvFailure(str(exc), reader.line_num))
        else:
            break
    return batch


class CsvReader:
    """CSV with a header row; columns matched by name, any order."""

    def __init__(self, manifest: Manifest, *, chunk_rows: int, id_column: str | None) -> None:
        self._manifest = manifest
        self._chunk_rows = chunk_rows
        # A feature that happens to be called like the id column stays a feature.
        self._id_column = id_column if id_column not in manifest.feature_names else None
        self.header: list[str] = []
        self.carry_columns: list[str] = []

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

    def chunks(self, lines: Iterable[str]) -> Iterator[Chunk]:
        reader = csv.reader(lines, strict=True)
        header: list[str] | None = None
        try:
            for record in reader:
                if record:
                    header = [h.strip() for h in record]
                    break
        except csv.Error as exc:
            raise FileError("corrupt", f"the header line is not valid CSV: {exc}") from exc
        if header is None:
            raise FileError("empty", "the file has no content")
        self._check_header(header)
        self.header = header
        width = len(header)
        features = self._manifest.features
        feature_idx = [header.index(f.name) for f in features]
        carry_idx = [header.index(c) for c in self.carry_columns]
        row = 0
        while True:
            first_line = reader.line_num
            batch = _next_batch(reader, self._chunk_rows)
            if not batch:
                return
            # Line numbers are known exactly when every record took one line (no quoted newlines).
            one_line_each = reader.line_num - first_line == len(batch)
            records = cast(list[list[str]], batch)
            if set(map(type, batch)) == {list} and set(map(len, records)) == {width}:
                # The common case: no blank line, no bad row in this batch.
                numbers = list(range(row + 1, row + 1 + len(batch)))
                lines_of = list(range(first_line + 1, reader.line_num + 1)) if one_line_each else None
                row += len(batch)
                yield self._chunk(numbers, lines_of, records, [], feature_idx, carry_idx)
                continue
            row, chunk = self._irregular(batch, row, first_line, one_line_each, feature_idx, carry_idx)
            if chunk is not None:
                yield chunk

    def _irregular(  # noqa: PLR0917 - the state of one batch
        self,
        batch: list[list[str] | _CsvFailure],
        row: int,
        first_line: int,
        one_line_each: bool,
        feature_idx: list[int],
        carry_idx: list[int],
    ) -> tuple[int, Chunk | None]:
        """A batch with blank lines or bad rows: sort it row by row; return the last row number."""
        width = len(self.header)
        numbers: list[int] = []
        lines: list[int] = []
        records: list[list[str]] = []
        rejected: list[RejectedRow] = []
        line = first_line
        for item in batch:
            line += 1
            if isinstance(item, _CsvFailure):
                row += 1
                error = FieldError(row, "(row)", "malformed_csv", item.message)
                rejected.append(RejectedRow(row, [error], None, item.line))
            elif not item:
                continue  # blank line: not a row
            elif len(item) == width:
                row += 1
                numbers.append(row)
                lines.append(line)
                records.append(item)
            else:
                row += 1
                message = f"{len(item)} fields, the header has {width}"
                error = FieldError(row, "(row)", "wrong_field_count", message)
                rejected.append(RejectedRow(row, [error], item, line if one_line_each else None))
        if not records and not rejected:
            return row, None
        lines_of = lines if one_line_each else None
        return row, self._chunk(numbers, lines_of, records, rejected, feature_idx, carry_idx)

    def _chunk(  # noqa: PLR0917 - the parallel lists of one chunk
        self,
        numbers: list[int],
        lines_of: list[int] | None,
        records: list[list[str]],
        rejected: list[RejectedRow],
        feature_idx: list[int],
        carry_idx: list[int],
    ) -> Chunk:
        cols: list[tuple[str, ...]] = list(zip(*records, strict=True)) if records else []
        columns: dict[str, list[Any]] = {}
        for f, i in zip(self._manifest.features, feature_idx, strict=True):
            cells = cols[i] if cols else ()
            columns[f.name] = _strings(cells) if f.is_categorical else _numbers(cells, f.dtype == "int64")
        carry = None
        if carry_idx and cols:
            names = self.carry_columns
            carry = [
                dict(zip(names, vals, strict=True))
                for vals in zip(*(cols[i] for i in carry_idx), strict=True)
            ]
        header = self.header
        return Chunk(
            numbers=numbers,
            columns=columns,
            carry=carry,
            raw=lambda i: dict(zip(header, records[i], strict=True)),
            lines=lines_of,
            rejected=rejected,
        )


# -- JSON Lines ---------------------------------------------------------------------------------


class JsonLinesReader:
    """One JSON object per line; blank lines are skipped and not numbered."""

    def __init__(self, manifest: Manifest, *, chunk_rows: int, id_column: str | None) -> None:
        self._manifest = manifest
        self._chunk_rows = chunk_rows
        # A feature that happens to be called like the id column stays a feature.
        self._id_column = id_column if id_column not in manifest.feature_names else None
        self._features = frozenset(manifest.feature_names)
        self._ignore_extra = manifest.extra_fields == "ignore"

    def chunks(self, lines: Iterable[str]) -> Iterator[Chunk]:
        numbers: list[int] = []
        lines_of: list[int] = []
        objects: list[dict[str, Any]] = []
        originals: list[dict[str, Any]] = []
        carry: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        row = 0
        seen_any = False
        for line_no, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            seen_any = True
            row += 1
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as exc:
                msg = f"not a JSON value: {exc}" if isinstance(exc, ValueError) else "nested too deeply"
                rejected.append(
                    RejectedRow(row, [FieldError(row, "(row)", "malformed_json", msg)], text, line_no)
                )
            else:
                if type(obj) is not dict:
                    rejected.append(
                        RejectedRow(
                            row,
                            [
                                FieldError(
                                    row,
                                    "(row)",
                                    "wrong_type",
                                    f"expected an object, got {type(obj).__name__}",
                                )
                            ],
                            obj,
                            line_no,
                        )
                    )
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
        if not seen_any:
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
            objects=objects,
            carry=carry if any(carry) else None,
            raw=lambda i: originals[i],
            lines=lines_of,
            rejected=rejected,
        )


def reader_for(
    fmt: Format, manifest: Manifest, *, chunk_rows: int, id_column: str | None
) -> CsvReader | JsonLinesReader:
    if fmt == "csv":
        return CsvReader(manifest, chunk_rows=chunk_rows, id_column=id_column)
    return JsonLinesReader(manifest, chunk_rows=chunk_rows, id_column=id_column)


__all__ = ["Chunk", "CsvReader", "JsonLinesReader", "RejectedRow", "reader_for"]
