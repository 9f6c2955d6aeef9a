"""Streaming readers: decoding, CSV/JSONL parsing, chunking, type conversion, file-level errors;
and the multipart writer against moto's S3."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from onnxlambda.batch.files import FileError, detect_format, text_lines
from onnxlambda.batch.readers import Chunk, CsvReader, JsonLinesReader, LineCounts, line_break_columns
from onnxlambda.batch.writer import MIN_PART_BYTES, MultipartWriter
from onnxlambda.contract.manifest import Manifest, load_manifest

BUCKET = "writer-test"


@pytest.fixture(scope="module")
def manifest(penguins_dir: Path) -> Manifest:
    return load_manifest(penguins_dir)


def one_byte_at_a_time(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


_last_counts: list[LineCounts] = [LineCounts()]


def csv_chunks(manifest: Manifest, data: bytes, chunk_rows: int = 1000) -> list[Chunk]:
    reader = CsvReader(manifest, chunk_rows=chunk_rows, id_column="id")
    chunks = list(reader.chunks(text_lines([data])))
    _last_counts[0] = reader.counts
    return chunks


def file_error(fn: Any) -> FileError:
    with pytest.raises(FileError) as info:
        fn()
    return info.value


# -- decoding -----------------------------------------------------------------------------------


def test_lines_survive_multibyte_characters_split_across_reads() -> None:
    # GIVEN UTF-8 text with a BOM, CRLF endings and multi-byte characters, read one byte at a time
    text = "a,b\r\nZürich,東京\r\nlast line without newline"
    lines = list(text_lines(one_byte_at_a_time(b"\xef\xbb\xbf" + text.encode())))
    # THEN the BOM is dropped and the lines come back whole, ends kept
    assert lines == ["a,b\r\n", "Zürich,東京\r\n", "last line without newline"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("island\nZürich\n".encode("latin-1"), "wrong_encoding"),
        (gzip.compress(b"island\nBiscoe\n"), "corrupt"),
        (b"island\nBis\x00coe\n", "corrupt"),
        (b"island\n\xe6\x9d", "wrong_encoding"),  # ends inside a multi-byte character
    ],
    ids=["latin-1", "gzip", "nul", "truncated-utf8"],
)
def test_unreadable_bytes_are_a_file_error(data: bytes, code: str) -> None:
    # WHEN bytes that are not UTF-8 text are decoded THEN a FileError names the problem
    err = file_error(lambda: list(text_lines(one_byte_at_a_time(data))))
    assert err.code == code


@pytest.mark.parametrize(
    ("key", "fmt"),
    [("in/a.csv", "csv"), ("in/A.CSV", "csv"), ("in/a.jsonl", "jsonl"), ("in/a.ndjson", "jsonl")],
)
def test_format_comes_from_the_extension(key: str, fmt: str) -> None:
    assert detect_format(key) == fmt


def test_unknown_extension_is_unknown_format() -> None:
    assert file_error(lambda: detect_format("in/a.parquet")).code == "unknown_format"


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_columns_match_by_name_in_any_order(manifest: Manifest) -> None:
    # GIVEN rows written with the columns reversed
    rows = sample_rows(manifest, 5, seed=1)
    data = csv_bytes(rows, manifest.feature_names[::-1])
    # WHEN read THEN each feature column holds that feature's values, converted to numbers
    [chunk] = csv_chunks(manifest, data)
    assert chunk.columns is not None
    for name in manifest.feature_names:
        assert chunk.columns[name] == [r[name] for r in rows]
    assert chunk.numbers == [1, 2, 3, 4, 5]


def test_csv_is_chunked_with_continuous_row_numbers(manifest: Manifest) -> None:
    # GIVEN 10 rows and chunks of 3
    data = csv_bytes(sample_rows(manifest, 10), manifest.feature_names)
    chunks = csv_chunks(manifest, data, chunk_rows=3)
    # THEN 4 chunks (3+3+3+1) numbered 1..10 without gaps
    assert [c.size for c in chunks] == [3, 3, 3, 1]
    assert [n for c in chunks for n in c.numbers] == list(range(1, 11))


def test_csv_cells_convert_by_manifest_dtype(manifest: Manifest) -> None:
    # GIVEN empty cells, blanks, unparsable numbers and quoted fields with a newline inside
    header = "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,id\n"
    body = 'Biscoe,37.5,, ,abc,,"id\nwith newline"\nDream,1e1,18,200,3000,male,x\n'
    [chunk] = csv_chunks(manifest, (header + body).encode())
    assert chunk.columns is not None
    cols = chunk.columns
    # THEN empty or blank numeric cells are null, numbers are floats, junk stays a string
    assert cols["bill_length_mm"] == [37.5, 10.0]
    assert cols["bill_depth_mm"] == [None, 18.0]
    assert cols["flipper_length_mm"] == [None, 200.0]
    assert cols["body_mass_g"] == ["abc", 3000.0]
    # AND an empty categorical cell is null, a present one verbatim
    assert cols["sex"] == [None, "male"]
    # AND the id column is carried for the output, quoted newline intact
    assert chunk.carry == [{"id": "id\nwith newline"}, {"id": "x"}]
    # AND a record spanning two lines is known by the lines it covers; row numbers stay exact
    assert (chunk.numbers, chunk.lines, chunk.spans) == ([1, 2], [2, 4], [2, 1])


def test_csv_rows_with_the_wrong_field_count_are_rejected_not_fatal(manifest: Manifest) -> None:
    names = manifest.feature_names
    good = csv_bytes(sample_rows(manifest, 2), names)
    data = good + b"Biscoe,1\n" + b"\n" + good.split(b"\n", 1)[1]
    chunks = csv_chunks(manifest, data)
    # THEN the short row is rejected with its row and line number; blank lines are not rows
    rejected = [r for c in chunks for r in c.rejected]
    assert [(r.row, r.line, r.errors[0].code) for r in rejected] == [(3, 4, "wrong_field_count")]
    assert [n for c in chunks for n in c.numbers] == [1, 2, 4, 5]


def test_csv_rows_the_csv_module_cannot_parse_are_rejected_and_reading_resumes(manifest: Manifest) -> None:
    # GIVEN a row with broken quoting between good rows
    names = manifest.feature_names
    good = csv_bytes(sample_rows(manifest, 2), names).split(b"\n", 1)[1]
    data = (",".join(names) + "\n").encode() + good + b'Biscoe,"39"1,18,181,3750,male\n' + good
    chunks = csv_chunks(manifest, data)
    rejected = [r for c in chunks for r in c.rejected]
    # THEN that row is rejected as malformed, numbered, and the rows after it are read
    assert [(r.row, r.errors[0].code) for r in rejected] == [(3, "malformed_csv")]
    assert [n for c in chunks for n in c.numbers] == [1, 2, 4, 5]


PENGUIN = "Biscoe,37.7,18.7,180,3600,male"
HEADER = "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex"


def rows_and_rejections(chunks: list[Chunk]) -> tuple[list[int], list[tuple[int, int, str, object]]]:
    numbers = [n for c in chunks for n in c.numbers]
    rejected = [(r.row, r.line or 0, r.errors[0].code, r.input) for c in chunks for r in c.rejected]
    return numbers, rejected


@pytest.mark.parametrize(
    ("records", "absorbed_chars"),
    [(2_000, "under"), (10_000, "over")],
    ids=["runs-to-eof-under-the-csv-field-limit", "runs-into-the-csv-field-limit"],
)
def test_an_unclosed_quote_costs_its_own_row_and_no_other(
    manifest: Manifest, records: int, absorbed_chars: str
) -> None:
    # GIVEN the file: one opening quote never closed, at record 1,000
    lines = [HEADER] + [PENGUIN] * records
    lines[1000] = '"' + lines[1000]
    after = "".join(line + "\n" for line in lines[1000:])
    # (the text after it is under / over the csv module's 131,072-character field limit)
    assert (len(after) > 131_072) == (absorbed_chars == "over")
    reader = CsvReader(manifest, chunk_rows=10_000, id_column="id")
    # WHEN read
    chunks = list(reader.chunks(text_lines(["\n".join(lines).encode() + b"\n"])))
    numbers, rejected = rows_and_rejections(chunks)
    # THEN record 1,000 alone is rejected, on the line where the bad record starts, with its
    # raw text; every other record is read, and the row numbers after it do not shift
    assert rejected == [(1000, 1001, "malformed_csv", lines[1000])]
    assert "unbalanced quote" in chunks[0].rejected[0].errors[0].message
    assert numbers == [n for n in range(1, records + 1) if n != 1000]
    assert [line for c in chunks for line in c.lines] == [n + 1 for n in numbers]
    # AND every physical line is the header, or one row's
    assert (reader.counts.total, reader.counts.header, reader.counts.blank) == (records + 1, 1, 0)
    assert all(c.spans is None for c in chunks)


def test_a_quote_that_closes_lines_later_costs_only_its_own_line(manifest: Manifest) -> None:
    # GIVEN a stray quote on line 3 and another on line 6: the csv module reads lines 3-6 as one
    # record of the header's width, whose bill length holds line breaks
    lines = [HEADER] + [PENGUIN] * 8
    lines[2] = 'Biscoe,"37.7,18.7,180,3600,male'
    lines[5] = 'Biscoe,37.7",18.7,180,3600,male'
    reader = CsvReader(manifest, chunk_rows=3, id_column="id")
    # WHEN read (in chunks smaller than the bad region)
    chunks = list(reader.chunks(text_lines(["\n".join(lines).encode()])))
    numbers, rejected = rows_and_rejections(chunks)
    # THEN line 3 is rejected alone; lines 4 and 5 are rows again; line 6, re-read on its own,
    # is a row whose quote is just a character (the validator will reject its value)
    assert [(row, line, code) for row, line, code, _ in rejected] == [(2, 3, "malformed_csv")]
    assert numbers == [1, 3, 4, 5, 6, 7, 8]
    assert reader.counts.total == 9


def test_a_quoted_newline_within_the_bound_is_one_row_over_it_a_bad_quote(manifest: Manifest) -> None:
    # GIVEN an id cell spanning three lines, and text cells bounded at 40 characters
    header = HEADER + ",id\n"
    ok = f'{PENGUIN},"first\nsecond\nthird"\n'
    long = f'{PENGUIN},"{"x" * 30}\n{"y" * 30}"\n'
    data = (header + ok + long + PENGUIN + ",z\n").encode()
    reader = CsvReader(manifest, chunk_rows=100, id_column="id", max_text_cell_chars=40)
    [chunk] = list(reader.chunks(text_lines([data])))
    # THEN the first record is one row on lines 2-4; the 61-character cell is over the bound:
    # its first line (5) is rejected alone, line 6 is read again as a record (a wrong field count)
    assert (chunk.numbers, chunk.lines, chunk.spans) == ([1, 4], [2, 7], [3, 1])
    assert chunk.carry is not None
    assert chunk.carry[0] == {"id": "first\nsecond\nthird"}
    assert [(r.row, r.line, r.errors[0].code) for r in chunk.rejected] == [
        (2, 5, "malformed_csv"),
        (3, 6, "wrong_field_count"),
    ]
    assert reader.counts.total == 7


def test_only_text_columns_may_hold_line_breaks(manifest: Manifest) -> None:
    # GIVEN the penguins features (4 numeric, 2 categorical without line breaks) and an id column
    allowed = line_break_columns(manifest, [*manifest.feature_names, "id"])
    # THEN only the id column may make a record span lines
    assert allowed == [False] * len(manifest.feature_names) + [True]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_blank_lines_mean_the_same_in_csv_and_jsonl(manifest: Manifest, fmt: str) -> None:
    # GIVEN the same three rows in both formats, with lines of nothing but spaces, tabs and CRs
    # (blank) and lines holding a form feed or a no-break space (not blank)
    rows = sample_rows(manifest, 3, seed=9)
    body = (
        (csv_bytes(rows, manifest.feature_names) if fmt == "csv" else jsonl_bytes(rows))
        .decode()
        .splitlines(keepends=True)
    )
    head, data = (body[:1], body[1:]) if fmt == "csv" else ([], body)
    blank = ["\n", "   \n", " \t\r\n"]
    text = "".join(
        [*head, blank[0], data[0], blank[1], blank[2], data[1], "\x0c\n", "\u00a0\n", data[2], "\t"]
    )
    chunks = (csv_chunks if fmt == "csv" else jsonl_chunks)(manifest, text.encode())
    reader_counts = _last_counts[0]
    numbers, rejected = rows_and_rejections(chunks)
    # THEN the blank lines are skipped and counted, unnumbered; the others are rejected rows
    assert numbers == [1, 2, 5]
    assert [(row, line) for row, line, _, _ in rejected] == [(3, 6 + len(head)), (4, 7 + len(head))]
    assert reader_counts.blank == 4  # the last line, a tab without a line end, too
    assert reader_counts.total == 9 + len(head)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"Biscoe,39.1,18.7,181,3750,male\n", "no_header"),
        (b"island,bill_length_mm\nBiscoe,39.1\n", "missing_columns"),
        (
            b"island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,colour\n",
            "unknown_columns",
        ),
        (
            b"island,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n",
            "duplicate_columns",
        ),
    ],
    ids=["empty", "blank", "no-header", "missing-columns", "extra-column-rejected", "duplicate-columns"],
)
def test_csv_file_level_errors(manifest: Manifest, data: bytes, code: str) -> None:
    # WHEN a file cannot be scored as a whole THEN a FileError with a stable code
    assert file_error(lambda: csv_chunks(manifest, data)).code == code


def test_csv_with_only_a_header_has_no_rows(manifest: Manifest) -> None:
    data = (",".join(manifest.feature_names) + "\n").encode()
    assert csv_chunks(manifest, data) == []


def test_csv_extra_columns_pass_through_when_the_manifest_ignores_them(manifest: Manifest) -> None:
    lenient = dataclasses.replace(manifest, extra_fields="ignore")
    rows = [{**r, "colour": "blue", "id": f"r{i}"} for i, r in enumerate(sample_rows(manifest, 2))]
    [chunk] = csv_chunks(lenient, csv_bytes(rows, ["colour", *manifest.feature_names, "id"]))
    assert chunk.carry == [{"id": "r0", "colour": "blue"}, {"id": "r1", "colour": "blue"}]


# -- JSON Lines ---------------------------------------------------------------------------------


def jsonl_chunks(manifest: Manifest, data: bytes, chunk_rows: int = 1000) -> list[Chunk]:
    reader = JsonLinesReader(manifest, chunk_rows=chunk_rows, id_column="id")
    chunks = list(reader.chunks(text_lines([data])))
    _last_counts[0] = reader.counts
    return chunks


def test_jsonl_rows_bad_lines_and_ids(manifest: Manifest) -> None:
    # GIVEN objects (one with an id), a line that is not JSON, a non-object and a blank line
    rows = sample_rows(manifest, 2)
    data = jsonl_bytes([{**rows[0], "id": 7}]) + b"{not json\n\n[1, 2]\n" + jsonl_bytes([rows[1]])
    [chunk] = jsonl_chunks(manifest, data)
    # THEN objects keep their JSON types with the id set aside; bad lines are rejected by row
    assert chunk.objects == rows
    assert chunk.carry == [{"id": 7}, {}]
    assert chunk.numbers == [1, 4]
    assert [(r.row, r.line, r.errors[0].code) for r in chunk.rejected] == [
        (2, 2, "malformed_json"),
        (3, 4, "wrong_type"),
    ]
    assert chunk.raw(0) == {**rows[0], "id": 7}


def test_jsonl_chunking(manifest: Manifest) -> None:
    chunks = jsonl_chunks(manifest, jsonl_bytes(sample_rows(manifest, 7)), chunk_rows=3)
    assert [c.size for c in chunks] == [3, 3, 1]


def test_empty_jsonl_is_a_file_error(manifest: Manifest) -> None:
    assert file_error(lambda: jsonl_chunks(manifest, b"\n  \n")).code == "empty"


def test_jsonl_reads_the_same_values_as_csv(manifest: Manifest) -> None:
    # GIVEN the same rows as CSV and as JSON Lines THEN the validator sees the same values
    rows = sample_rows(manifest, 50, seed=3)
    [c] = csv_chunks(manifest, csv_bytes(rows, manifest.feature_names))
    [j] = jsonl_chunks(manifest, jsonl_bytes(rows))
    assert c.columns == {n: [o.get(n) for o in j.objects or []] for n in manifest.feature_names}


# -- multipart writer ---------------------------------------------------------------------------


def test_small_output_is_one_put(s3: Any) -> None:
    w = MultipartWriter(s3, BUCKET, "out/a.csv", "text/csv", MIN_PART_BYTES)
    w.write(b"a\n")
    w.write(b"b\n")
    w.close()
    assert w.parts == 0
    assert s3.get_object(Bucket=BUCKET, Key="out/a.csv")["Body"].read() == b"a\nb\n"


def test_large_output_is_uploaded_in_parts_of_at_least_5_mib(s3: Any) -> None:
    # GIVEN 12 MiB written in 1 MiB pieces with 5 MiB parts
    piece = bytes(range(256)) * 4096
    w = MultipartWriter(s3, BUCKET, "out/big.bin", "application/octet-stream", MIN_PART_BYTES)
    for _ in range(12):
        w.write(piece)
        # THEN nothing is visible before close
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    w.close()
    # THEN three parts (5 + 5 + 2 MiB) reassemble into exactly the bytes written
    assert w.parts == 3
    assert s3.get_object(Bucket=BUCKET, Key="out/big.bin")["Body"].read() == piece * 12


def test_abort_leaves_no_object_and_no_pending_upload(s3: Any) -> None:
    w = MultipartWriter(s3, BUCKET, "out/x.bin", "application/octet-stream", MIN_PART_BYTES)
    w.write(b"x" * (MIN_PART_BYTES + 1))
    w.abort()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET)


def test_part_size_below_the_s3_minimum_is_refused(s3: Any) -> None:
    with pytest.raises(ValueError, match="at least"):
        MultipartWriter(s3, BUCKET, "k", "text/csv", MIN_PART_BYTES - 1)


def test_error_rows_serialise(manifest: Manifest) -> None:
    [chunk] = jsonl_chunks(manifest, b"oops\n")
    assert json.loads(json.dumps(chunk.rejected[0].to_dict()))["errors"][0]["code"] == "malformed_json"
