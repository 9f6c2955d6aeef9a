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

from onnxlambda.batch.csv_reader import TEXT_CELL_CHARS, CsvReader, line_break_columns
from onnxlambda.batch.files import Format
from onnxlambda.batch.jsonl_reader import JsonLinesReader
from onnxlambda.batch.rows import WHOLE_FILE, Chunk, LineCounts, RejectedRow, Span
from onnxlambda.contract.manifest import Manifest


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
    "WHOLE_FILE",
    "Chunk",
    "CsvReader",
    "JsonLinesReader",
    "LineCounts",
    "RejectedRow",
    "Span",
    "line_break_columns",
    "reader_for",
]
