"""The fast JSON codec parses and writes exactly what the standard library would, value for value."""

from __future__ import annotations

import json
import math

import pytest

from onnxlambda.codecs import fastjson


@pytest.mark.parametrize(
    "raw",
    [
        '{"instances": [{"a": 1.5, "b": "x", "c": null, "d": true}]}',
        '{"a": NaN, "b": Infinity, "c": -Infinity}',  # not JSON, but Python's parser reads them
        '{"huge": 1' + "0" * 400 + "}",  # beyond float64
        '{"dup": 1, "dup": 2}',
        b'{"bytes": "\\u00e9"}',
    ],
)
def test_loads_reads_what_json_loads_reads(raw: str | bytes) -> None:
    # GIVEN bodies orjson accepts and bodies only the standard parser accepts
    # THEN the result is the standard library's, value for value (NaN compared as NaN)
    got, want = fastjson.loads(raw), json.loads(raw)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"instances": [', json.JSONDecodeError),
        (b"\xff\xfe not utf-8", json.JSONDecodeError),
        (b'{"a": "\xff"}', UnicodeDecodeError),
        ("[" * 100_000 + "]" * 100_000, RecursionError),
    ],
)
def test_loads_refuses_what_json_loads_refuses_with_its_errors(raw: str | bytes, error: type) -> None:
    with pytest.raises(error):
        fastjson.loads(raw)


def test_integers_beyond_64_bits_arrive_as_the_float64_the_validator_makes_of_them() -> None:
    assert fastjson.loads('{"big": 123456789012345678901234567890}') == {"big": 1.2345678901234568e29}


def test_dumps_round_trips_a_prediction_body() -> None:
    body = {"model": {"name": "m", "version": "1.0.0"}, "predictions": [{"label": "A", "p": 1e-06}] * 3}
    assert json.loads(fastjson.dumps(body)) == body


def test_dumps_falls_back_for_what_orjson_refuses_and_writes_valid_json_for_nan() -> None:
    assert json.loads(fastjson.dumps({1: "int key", "big": 2**70})) == {"1": "int key", "big": 2**70}
    assert json.loads(fastjson.dumps({"x": math.nan})) == {"x": None}


@pytest.mark.parametrize(
    "number", ["9223372036854775807", "18446744073709551615", "18446744073709551616", "-9223372036854775809"]
)
def test_an_integer_reads_the_same_whichever_parser_reads_it(number: str) -> None:
    # GIVEN an integer at or beyond 64 bits, alone (orjson reads it) and beside NaN (only the
    # standard library's parser accepts NaN, so it reads the whole document)
    alone = fastjson.loads(number)
    [beside, _] = fastjson.loads(f"[{number}, NaN]")
    # THEN the same type and value either way (found by the batch column-parse property test)
    assert (type(beside), beside) == (type(alone), alone)
