"""Property: whatever is wrong with a batch file, every physical line is accounted for once.

Generated CSV and JSON Lines files (penguins rows, ids with commas, quotes and line breaks) are
damaged at random: quotes inserted (unclosed or stray; anywhere, or where a field starts), lines
cut short, fields dropped or added, blank and whitespace-only lines, lines of other whitespace
(form feed, no-break space), lone CRs, CRLF endings, a missing last line end, and now and then a
byte that is not UTF-8. They are read in
random pieces, chunk sizes and line-block sizes, validated and scored (onnxlambda.batch.readers /
scoring, no S3), and then:

- a file is either unreadable as a whole (a FileError with a known code), or
- lines in the file = header + blank + lines of scored rows + lines of rejected rows, and more
  precisely each physical line is the header, a blank line, or inside exactly one row's
  [line, end_line]; the lines inside no row are exactly the blank ones (computed independently);
- rows are numbered 1..read without gap or repeat, in line order; read = scored + rejected, and
  the summary's counters agree with what the chunks held;
- a row rejected because it could not be parsed carries its raw text (the line it starts on).

CI runs BATCH_PROPERTY_EXAMPLES (default 300) cases; `make property` runs thousands.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from devtools.batchdata import csv_bytes, sample_rows
from onnxlambda.batch import csv_reader
from onnxlambda.batch.files import FileError, is_blank, text_lines
from onnxlambda.batch.readers import Chunk, CsvReader, JsonLinesReader, RejectedRow, reader_for
from onnxlambda.batch.scorer import Scorer
from onnxlambda.contract.manifest import Manifest
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from tests.conftest import MODELS

EXAMPLES = int(os.environ.get("BATCH_PROPERTY_EXAMPLES", "300"))
FILE_ERRORS = {"empty", "wrong_encoding", "corrupt", "no_header", "missing_columns", "unknown_columns"}
FILE_ERRORS |= {"duplicate_columns"}

RUNTIME = ModelRuntime.load(MODELS / "penguins")
MANIFEST: Manifest = RUNTIME.manifest
VALIDATOR = Validator(MANIFEST, max_rows=1)

_IDS = st.one_of(
    st.integers(0, 999).map(lambda i: f"p{i}"),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "cr\r\nlf", '"', "x\n\ny", ""]),
)
_KINDS = ["quote", "open_quote", "open_quote", "truncate", "drop_field", "add_field"]
_KINDS += ["blank", "whitespace", "odd_space", "lone_cr", "crlf"]


def _damage(lines: list[str], kind: str, at: int, cut: int, filler: str) -> None:
    """Apply one kind of damage at line `at` (cut: a position in it; filler: inserted text)."""
    line = lines[at]
    if kind == "quote":
        lines[at] = line[:cut] + '"' + line[cut:]
    elif kind == "open_quote":  # at the start of a field, where a CSV quote opens one
        starts = [0] + [i + 1 for i, ch in enumerate(line) if ch == ","]
        i = starts[cut % len(starts)]
        lines[at] = line[:i] + '"' + line[i:]
    elif kind == "truncate":
        lines[at] = line[:cut]
    elif kind == "drop_field" and "," in line:
        lines[at] = line.rsplit(",", 1)[0]
    elif kind == "add_field":
        lines[at] = line + ",extra"
    elif kind in {"blank", "whitespace", "odd_space"}:
        lines.insert(at, filler)
    elif kind == "lone_cr":
        lines[at] = line[:cut] + "\r" + line[cut:]
    elif kind == "crlf":
        lines[at] = line + "\r"


_FILLERS = {
    "blank": st.just(""),
    "whitespace": st.text(alphabet=" \t\r", min_size=1, max_size=4),
    "odd_space": st.sampled_from(["\x0c", "\u00a0", "\u2028", "\x0b", " \x1c "]),
}


@st.composite
def damaged_files(draw: st.DrawFn, formats: tuple[str, ...] = ("csv", "jsonl")) -> tuple[str, str, bytes]:
    """(format, the decoded text, the bytes as uploaded) of one damaged file."""
    fmt = draw(st.sampled_from(formats))
    rows: list[dict[str, Any]] = sample_rows(
        MANIFEST, draw(st.integers(0, 30)), seed=draw(st.integers(0, 10**4))
    )
    with_ids = draw(st.booleans())
    if with_ids:
        rows = [{"id": draw(_IDS), **r} for r in rows]
    columns = (["id"] if with_ids else []) + MANIFEST.feature_names
    text = csv_bytes(rows, columns).decode() if fmt == "csv" else "".join(json.dumps(r) + "\n" for r in rows)
    lines = text.split("\n")
    spare_header = fmt == "csv" and len(lines) > 2 and draw(st.integers(0, 9)) > 0  # mostly
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(_KINDS))
        at = draw(st.integers(1 if spare_header else 0, len(lines) - 1))
        cut = draw(st.integers(0, len(lines[at])))
        event(f"damage: {kind}")
        _damage(lines, kind, at, cut, draw(_FILLERS.get(kind, st.just(""))))
    text = "\n".join(lines)
    if draw(st.booleans()) and text.endswith("\n"):
        text = text[:-1]  # no line end on the last line
    data = text.encode()
    # now and then (1 in 20: hypothesis favours the ends of a range, so not 0), a byte that is not UTF-8
    if data and draw(st.integers(1, 20)) == 13:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + b"\xff" + data[at:]
    return fmt, text, data


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


class _Discard:
    def write(self, data: bytes) -> None:
        pass


def physical_lines(text: str) -> list[str]:
    """The file's physical lines, counted independently of the readers."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@given(
    damaged_files(),
    st.lists(st.integers(0, 10**6), max_size=4),
    st.sampled_from([1, 2, 5, 1000]),
    st.sampled_from([1, 3, 4096]),
)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_physical_line_is_accounted_for_once(
    file: tuple[str, str, bytes], cuts: list[int], chunk_rows: int, block_lines: int
) -> None:
    fmt, text, data = file
    # GIVEN a damaged file, read in random pieces, chunks and line blocks
    reader = reader_for(fmt, MANIFEST, chunk_rows=chunk_rows, id_column="id", max_text_cell_chars=40)  # type: ignore[arg-type]
    scorer = Scorer(RUNTIME, VALIDATOR, fmt, "id")  # type: ignore[arg-type]
    chunks: list[Chunk] = []
    # WHEN it is read and scored
    refused = read_and_score(reader, scorer, pieces(data, cuts), block_lines, chunks)
    if refused is not None:
        # THEN either the whole file is refused with a known reason...
        event(f"file error: {refused.code}")
        assert refused.code in FILE_ERRORS, refused
        return
    assert b"\xff" not in data  # not UTF-8 is always refused
    lines = physical_lines(text)
    counts = reader.counts
    # ... or every line is the header, a blank line, or inside exactly one row
    assert counts.total == len(lines)
    spans: list[tuple[int, int, int]] = []  # (row, first line, last line)
    for c in chunks:
        spans += [(n, c.lines[i], c.end_line(i) or c.lines[i]) for i, n in enumerate(c.numbers)]
        spans += [(r.row, r.line or 0, r.end_line or r.line or 0) for r in c.rejected]
    spans.sort()
    assert [row for row, _, _ in spans] == list(range(1, len(spans) + 1))  # no gap, no repeat
    covered = [0] * (len(lines) + 1)
    for _, first, last in spans:
        assert 1 <= first <= last <= len(lines)
        for line in range(first, last + 1):
            covered[line] += 1
    firsts = [first for _, first, _ in spans]
    assert firsts == sorted(firsts)  # rows in line order
    header = range(1, 1) if fmt == "jsonl" else _header_lines(lines, counts.header)
    for line in header:
        covered[line] += 1
    assert max(covered[1:], default=1) == 1  # nothing counted twice
    free = [i for i in range(1, len(lines) + 1) if not covered[i]]
    assert all(is_blank(lines[i - 1]) for i in free)  # what no row holds is blank...
    assert len(free) == counts.blank  # ...and every blank line outside a row is counted
    # AND the scorer's counters (the summary's) say the same
    assert scorer.rows_read == len(spans) == scorer.rows_scored + scorer.rows_rejected
    assert counts.header + counts.blank + scorer.lines_scored + scorer.lines_rejected == counts.total
    # AND a row that could not be parsed carries the text of the line it starts on
    for r in (r for c in chunks for r in c.rejected):
        if r.errors[0].code in {"malformed_csv", "malformed_json"}:
            assert r.input == lines[(r.line or 0) - 1].rstrip("\r")
            event("unparsable row")
            if "unbalanced quote" in r.errors[0].message:
                event("unbalanced quote: re-read from the next line")
    if any((c.spans or [1]) != [1] * len(c.spans or [1]) for c in chunks):
        event("a row spans lines")


@given(damaged_files(formats=("csv",)), st.sampled_from([1, 3, 1000]))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lines_split_as_text_read_exactly_as_the_csv_module_reads_them(
    file: tuple[str, str, bytes], chunk_rows: int
) -> None:
    # GIVEN a damaged CSV file (plain lines mixed with quoted, blank, short and long ones)
    _, _, data = file

    def read(plain: bool) -> list[tuple[Any, ...]] | str:
        reader = CsvReader(MANIFEST, chunk_rows=chunk_rows, id_column="id", max_text_cell_chars=40)
        split_as_text: Any = contextlib.nullcontext()
        if not plain:  # no line is plain: the csv module reads them all
            split_as_text = mock.patch.object(csv_reader, "_plain_records", return_value=(0, []))
        try:
            with split_as_text:
                chunks = list(reader.chunks(text_lines([data])))
        except FileError as exc:
            return exc.code
        return [
            (c.numbers, c.lines, c.spans, c.columns, c.carry, [r.to_dict() for r in c.rejected])
            for c in chunks
        ]

    # WHEN read with plain lines split as text, and with every line through the csv module
    # THEN the chunks are the same, value for value
    assert read(plain=True) == read(plain=False)


def read_and_score(
    reader: CsvReader | JsonLinesReader,
    scorer: Scorer,
    data: list[bytes],
    block_lines: int,
    into: list[Chunk],
) -> FileError | None:
    """Read and score the pieces, keeping a copy of every chunk; the file's refusal, if any."""
    sink: Any = _Discard()
    try:
        with mock.patch.object(csv_reader, "_BLOCK_LINES", block_lines):
            for chunk in reader.chunks(text_lines(data)):
                into.append(_snapshot(chunk))
                scorer.score(chunk, sink, sink)
    except FileError as exc:
        return exc
    return None


def _snapshot(chunk: Chunk) -> Chunk:
    """What the checks need, copied before the scorer sees the chunk."""
    rejected = [RejectedRow(r.row, r.errors, r.input, r.line, r.end_line) for r in chunk.rejected]
    return Chunk(numbers=list(chunk.numbers), lines=list(chunk.lines), spans=chunk.spans, rejected=rejected)


def _header_lines(lines: list[str], header: int) -> range:
    first = next(i for i, line in enumerate(lines, start=1) if not is_blank(line))
    return range(first, first + header)


def test_the_property_runs_the_configured_number_of_examples() -> None:
    # (a guard on the knob itself: CI's bound, raised by `make property`)
    assert EXAMPLES >= 100
    assert Path(__file__).name.startswith("test_")
