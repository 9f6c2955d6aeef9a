"""Streaming readers: decoding, CSV/JSONL parsing, chunking, type conversion, file-level errors;
and the multipart writer against moto's S3."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from onnxlambda.batch.files import FileError, detect_format, text_lines
from onnxlambda.batch.readers import Chunk, CsvReader, JsonLinesReader
from onnxlambda.batch.writer import MIN_PART_BYTES, MultipartWriter
from onnxlambda.contract.manifest import Manifest, load_manifest


@pytest.fixture(scope="module")
def manifest(penguins_dir: Path) -> Manifest:
    return load_manifest(penguins_dir)


def one_byte_at_a_time(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def csv_chunks(manifest: Manifest, data: bytes, chunk_rows: int = 1000) -> list[Chunk]:
    reader = CsvReader(manifest, chunk_rows=chunk_rows, id_column="id")
    return list(reader.chunks(text_lines([data])))


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
    # AND a record spanning two lines makes line numbers unknown (None); row numbers stay exact
    assert chunk.lines is None


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
    return list(reader.chunks(text_lines([data])))


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


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="writer-test")
        yield client


def test_small_output_is_one_put(s3: Any) -> None:
    w = MultipartWriter(s3, "writer-test", "out/a.csv", "text/csv", MIN_PART_BYTES)
    w.write(b"a\n")
    w.write(b"b\n")
    w.close()
    assert w.parts == 0
    assert s3.get_object(Bucket="writer-test", Key="out/a.csv")["Body"].read() == b"a\nb\n"


def test_large_output_is_uploaded_in_parts_of_at_least_5_mib(s3: Any) -> None:
    # GIVEN 12 MiB written in 1 MiB pieces with 5 MiB parts
    piece = bytes(range(256)) * 4096
    w = MultipartWriter(s3, "writer-test", "out/big.bin", "application/octet-stream", MIN_PART_BYTES)
    for _ in range(12):
        w.write(piece)
        # THEN nothing is visible before close
        assert "Contents" not in s3.list_objects_v2(Bucket="writer-test")
    w.close()
    # THEN three parts (5 + 5 + 2 MiB) reassemble into exactly the bytes written
    assert w.parts == 3
    assert s3.get_object(Bucket="writer-test", Key="out/big.bin")["Body"].read() == piece * 12


def test_abort_leaves_no_object_and_no_pending_upload(s3: Any) -> None:
    w = MultipartWriter(s3, "writer-test", "out/x.bin", "application/octet-stream", MIN_PART_BYTES)
    w.write(b"x" * (MIN_PART_BYTES + 1))
    w.abort()
    assert "Contents" not in s3.list_objects_v2(Bucket="writer-test")
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="writer-test")


def test_part_size_below_the_s3_minimum_is_refused(s3: Any) -> None:
    with pytest.raises(ValueError, match="at least"):
        MultipartWriter(s3, "writer-test", "k", "text/csv", MIN_PART_BYTES - 1)


def test_error_rows_serialise(manifest: Manifest) -> None:
    [chunk] = jsonl_chunks(manifest, b"oops\n")
    assert json.loads(json.dumps(chunk.rejected[0].to_dict()))["errors"][0]["code"] == "malformed_json"
