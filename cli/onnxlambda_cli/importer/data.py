"""The reference data: a CSV with a header, read as text and typed by the tensor each column feeds.

Missing cells are the ones pandas.read_csv reads as missing by default (empty, NA, NaN, null,
None, N/A, ...), since that is how most training data was read. A column feeding a float
tensor must hold numbers (or missing cells); one feeding an int64 tensor, integers; one feeding
a string tensor is taken as text. A value that does not parse is refused with its column, line
and text, so the user can find it.

The data fingerprint is the sha256 of a canonical CSV of the typed values (see `canonical_csv`):
the same data gives the same fingerprint whatever the file's quoting, number spelling or line
endings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from onnxlambda_cli.importer.errors import ImportInputError

# pandas.read_csv's default na_values (pandas/_libs/parsers.pyx STR_NA_VALUES).
MISSING_TOKENS: Final = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
_TRUE, _FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})

Value = float | int | str | None
Row = dict[str, Value]


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV as text: the header and one list of cells per column (None = missing cell)."""

    path: Path
    header: list[str]
    columns: dict[str, list[str | None]]
    lines: list[int]  # the file line each data row starts on (for error messages)

    @property
    def rows(self) -> int:
        return len(self.lines)

    @property
    def name(self) -> str:
        return self.path.name


def read_table(path: Path) -> Table:
    """The CSV at `path`, every cell as text; refuses a file without a usable header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportInputError(f"no such data file: {path}") from None
    except UnicodeDecodeError as exc:
        raise ImportInputError(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportInputError(f"{path.name} is empty: the data needs a header line and rows") from None
    if not all(header) or len(set(header)) != len(header):
        raise ImportInputError(f"{path.name}: the header needs unique, non-empty column names, got {header}")
    columns: dict[str, list[str | None]] = {h: [] for h in header}
    lines: list[int] = []
    start = reader.line_num + 1
    for cells in reader:
        if not cells:  # a blank line
            start = reader.line_num + 1
            continue
        if len(cells) != len(header):
            raise ImportInputError(
                f"{path.name} line {start}: {len(cells)} cells for {len(header)} columns in the header"
            )
        for name, cell in zip(header, cells, strict=True):
            columns[name].append(None if cell.strip() in MISSING_TOKENS else cell)
        lines.append(start)
        start = reader.line_num + 1
    if not lines:
        raise ImportInputError(f"{path.name} has a header but no rows")
    return Table(path, header, columns, lines)


def number_column(table: Table, name: str, *, feeds: str, integer: bool = False) -> list[float | int | None]:
    """The column as numbers, missing cells as None; refuses the first cell that is not one."""
    out: list[float | int | None] = []
    for i, cell in enumerate(table.columns[name]):
        if cell is None:
            out.append(None)
            continue
        value = _number(cell)
        if value is None or (integer and not float(value).is_integer()):
            what = "an integer" if integer else "a number"
            raise ImportInputError(
                f"{table.name} line {table.lines[i]}: column {name!r} feeds {feeds}, so it must hold "
                f"{what} or an empty cell, got {cell!r} (check --features and the column order)"
            )
        if not math.isfinite(value):
            raise ImportInputError(
                f"{table.name} line {table.lines[i]}: column {name!r} holds {cell!r}; reference data "
                "must be finite numbers or empty cells"
            )
        out.append(int(value) if integer else value)
    return out


def _number(cell: str) -> float | None:
    text = cell.strip()
    if text in _TRUE or text in _FALSE:  # pandas writes bool columns as True/False
        return 1.0 if text in _TRUE else 0.0
    try:
        return float(text)
    except ValueError:
        return None


def text_column(table: Table, name: str) -> list[str | None]:
    return list(table.columns[name])


def target_column(table: Table, name: str) -> list[float | str | None]:
    """The target as numbers when every present cell is one, else as text."""
    cells = table.columns[name]
    numbers = [None if c is None else _number(c) for c in cells]
    if all(n is not None for n, c in zip(numbers, cells, strict=True) if c is not None):
        return list(numbers)
    return list(cells)


# -- fingerprint ----------------------------------------------------------------------------------


def canonical_csv(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> bytes:
    """A canonical CSV of `rows` in the given order, for fingerprinting.

    Header = `columns`; "\\n" line endings; minimal quoting; missing (None/NaN) -> empty field;
    floats as Python's shortest round-trip `repr`; integers and strings as `str`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_canonical_cell(row[c]) for c in columns])
    return buf.getvalue().encode("utf-8")


def _canonical_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, np.floating):
        return "" if np.isnan(value) else repr(float(value))
    return str(value)


def fingerprint(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> str:
    """sha256 over `canonical_csv` of the exact rows the contract was derived from."""
    return hashlib.sha256(canonical_csv(columns, rows)).hexdigest()


__all__ = [
    "MISSING_TOKENS",
    "Row",
    "Table",
    "Value",
    "canonical_csv",
    "fingerprint",
    "number_column",
    "read_table",
    "target_column",
    "text_column",
]
