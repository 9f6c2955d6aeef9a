"""The one number rule (onnxlambda.batch.numbers): the same text is the same value, or the same
refusal, in a CSV cell, a JSON Lines row and a /predict request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.batchdata import csv_bytes, sample_rows
from onnxlambda.batch.files import text_lines
from onnxlambda.batch.numbers import parse_cell, parse_column
from onnxlambda.batch.readers import Chunk, CsvReader, JsonLinesReader
from onnxlambda.codecs.predict import read_json
from onnxlambda.contract.errors import ServingError
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings

FEATURE = "body_mass_g"  # float32 in [900, 8100], nullable


@pytest.fixture(scope="module")
def service(penguins_dir: Path) -> Service:
    return Service(ModelRuntime.load(penguins_dir), Settings.from_env())


# (text as written in the file or request, what every path makes of it)
SPELLINGS = [
    ("3600", "value"),
    ("3600.25", "value"),
    ("3.6e3", "value"),
    ("36E+2", "value"),
    ("360000e-2", "value"),
    (" 3600\t", "value"),  # JSON whitespace around a number
    ("NaN", "not_finite"),  # Python's JSON parser reads these three tokens, the validator refuses them
    ("Infinity", "not_finite"),
    ("-Infinity", "not_finite"),
    ("1e400", "not_finite"),  # beyond float64
    ("1_000", "refused"),
    ("\u0663\u0666\u0660\u0660", "refused"),  # Arabic-Indic digits
    ("\uff13\uff16\uff10\uff10", "refused"),  # full-width digits
    ("\u00a03600", "refused"),  # a no-break space is not JSON whitespace
    ("+3600", "refused"),
    ("3600.", "refused"),
    (".5e4", "refused"),
    ("03600", "refused"),
    ("0xe10", "refused"),
    ("3600,5", "refused"),
    ("nan", "refused"),
    ("inf", "refused"),
    ("infinity", "refused"),
    ("true", "refused"),
    ('"3600"', "refused"),  # a JSON string (in CSV: a cell holding quote characters)
]
VERDICT = {"wrong_type": "refused", "malformed": "refused", "not_finite": "not_finite", None: "value"}


def one_row(service: Service) -> dict[str, Any]:
    row: dict[str, Any] = sample_rows(service.manifest, 1, seed=11)[0]
    row[FEATURE] = 3600.0
    return row


def csv_outcome(service: Service, text: str) -> tuple[str | None, object]:
    row = one_row(service)
    # the csv module writes the cell, quoting it when it must (a comma, a quote character)
    data = csv_bytes([{**row, FEATURE: text}], service.manifest.feature_names)
    reader = CsvReader(service.manifest, chunk_rows=10, id_column="id")
    [chunk] = list(reader.chunks(text_lines([data])))
    assert chunk.columns is not None
    return _verdict(service, chunk), chunk.columns[FEATURE][0]


def jsonl_outcome(service: Service, text: str) -> tuple[str | None, object]:
    row = one_row(service)
    line = json.dumps(row).replace("3600.0", text, 1)
    reader = JsonLinesReader(service.manifest, chunk_rows=10, id_column="id")
    [chunk] = list(reader.chunks(text_lines([line.encode()])))
    if chunk.rejected:
        return "malformed", None
    assert chunk.objects is not None
    return _verdict(service, chunk), chunk.objects[0][FEATURE]


def api_outcome(service: Service, text: str) -> tuple[str | None, object]:
    body = json.dumps({"instances": [one_row(service)]}).replace("3600.0", text, 1)
    try:
        parsed: Any = read_json(body, service.settings.max_body_bytes)
        service.predict(parsed)
    except ServingError as err:
        if err.code == "malformed_request":
            return "malformed", None
        [detail] = err.details
        return detail.code, parsed["instances"][0][FEATURE]
    return None, parsed["instances"][0][FEATURE]


def _verdict(service: Service, chunk: Chunk) -> str | None:
    if chunk.columns is not None:
        partial = service.validator.validate_columns(chunk.columns, chunk.size)
    else:
        assert chunk.objects is not None
        partial = service.validator.validate_partial(chunk.objects)
    [errors] = partial.errors.values() if partial.errors else [[]]
    return errors[0].code if errors else None


@pytest.mark.parametrize(("text", "expected"), SPELLINGS, ids=[repr(t) for t, _ in SPELLINGS])
def test_a_number_means_the_same_in_csv_jsonl_and_the_api(service: Service, text: str, expected: str) -> None:
    # GIVEN the same spelling of body_mass_g in a CSV cell, a JSON Lines row and a /predict body
    # WHEN each path reads and validates it
    csv_code, csv_value = csv_outcome(service, text)
    jsonl_code, jsonl_value = jsonl_outcome(service, text)
    api_code, api_value = api_outcome(service, text)
    # THEN all three reach the same verdict
    assert (VERDICT[csv_code], VERDICT[jsonl_code], VERDICT[api_code]) == (expected,) * 3
    # AND a number is the same value everywhere (the CSV cell went through the API's JSON parser)
    if expected != "refused":
        assert repr(csv_value) == repr(jsonl_value) == repr(api_value)


def test_csv_text_that_is_not_a_number_is_wrong_type_never_null(service: Service) -> None:
    # GIVEN the spellings some tools write for "missing": only an empty or blank cell is null
    for text, value in [("", None), ("  ", None), ("null", "null"), ("NA", "NA"), ("nan", "nan")]:
        # WHEN read as a CSV cell THEN it is null, or it stays text (the validator's wrong_type)
        assert parse_cell(text) == value
        assert parse_column([text, "1"]) == [value, 1]
    code, _ = csv_outcome(service, "null")
    assert code == "wrong_type"


# Numbers as Python writes them, and text made of what numbers (and near-numbers) are made of,
# plus the odd character out.
_CELLS = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.text(alphabet=st.sampled_from(list('0123456789-+.eE ,\t\r\n_xnaNIfinty[]"\u0661\uff11')), max_size=8),
)


@given(st.lists(_CELLS, max_size=12))
@settings(max_examples=400, deadline=None)
def test_the_column_shortcut_reads_every_cell_as_the_rule_does(cells: list[str]) -> None:
    # GIVEN any column of cells WHEN read in one JSON parse THEN the values are those of the
    # rule applied cell by cell (the same types too: 1 stays an int, 1.0 a float)
    got = parse_column(cells)
    want = [parse_cell(c) for c in cells]
    assert [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in want]
