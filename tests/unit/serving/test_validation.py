"""Validation turns every kind of bad input into a structured error naming the row and field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnxlambda.codecs.predict import decode, read_json
from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import load_manifest
from onnxlambda.serving.service import Service
from onnxlambda.serving.validation import Validator
from onnxlambda.settings import Settings
from tests.conftest import golden_rows

ROW: dict[str, Any] = {
    "island": "Biscoe",
    "bill_length_mm": 37.7,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 180.0,
    "body_mass_g": 3600.0,
    "sex": "male",
}


@pytest.fixture(scope="module")
def validator(penguins_dir: Path) -> Validator:
    return Validator(load_manifest(penguins_dir), max_rows=50, max_error_details=10)


def refused(validator: Validator, rows: object) -> ServingError:
    with pytest.raises(ServingError) as info:
        validator.validate(rows)
    return info.value


def details(err: ServingError) -> list[tuple[int | None, str, str]]:
    return [(d.row, d.field, d.code) for d in err.details]


def test_valid_rows_become_typed_columns(validator: Validator) -> None:
    # GIVEN two valid rows, one with the nullable features left null
    rows = [ROW, {**ROW, "sex": None, "body_mass_g": None}]
    # WHEN they are validated
    batch = validator.validate(rows)
    # THEN every feature is an [N, 1] tensor of the manifest's dtype; nulls become NaN and ""
    assert batch.rows == 2
    assert batch.columns["bill_length_mm"].dtype == np.float32
    assert batch.columns["bill_length_mm"].shape == (2,)
    assert math.isnan(float(batch.columns["body_mass_g"][1]))
    assert batch.columns["sex"].tolist() == ["male", ""]
    assert batch.health.missing == {**dict.fromkeys(ROW, 0), "sex": 1, "body_mass_g": 1}


def test_integers_are_accepted_as_numbers(validator: Validator) -> None:
    # GIVEN a JSON integer where the model takes a float
    batch = validator.validate([{**ROW, "body_mass_g": 3600}])
    # THEN it is a number like any other
    assert batch.columns["body_mass_g"][0] == np.float32(3600)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [{k: v for k, v in ROW.items() if k != "island"}],
            [(0, "island", "missing_feature")],
            id="missing",
        ),
        pytest.param([{**ROW, "colour": "black"}], [(0, "colour", "unknown_feature")], id="extra"),
        pytest.param([{**ROW, "island": None}], [(0, "island", "null_not_allowed")], id="null"),
        pytest.param(
            [{**ROW, "body_mass_g": "heavy"}], [(0, "body_mass_g", "wrong_type")], id="string-for-number"
        ),
        pytest.param(
            [{**ROW, "body_mass_g": True}], [(0, "body_mass_g", "wrong_type")], id="bool-for-number"
        ),
        pytest.param(
            [{**ROW, "body_mass_g": [1]}], [(0, "body_mass_g", "wrong_type")], id="array-for-number"
        ),
        pytest.param([{**ROW, "island": 3}], [(0, "island", "wrong_type")], id="number-for-string"),
        pytest.param([{**ROW, "bill_length_mm": math.nan}], [(0, "bill_length_mm", "not_finite")], id="nan"),
        pytest.param([{**ROW, "bill_length_mm": math.inf}], [(0, "bill_length_mm", "not_finite")], id="inf"),
        pytest.param([{**ROW, "body_mass_g": 250_000}], [(0, "body_mass_g", "out_of_range")], id="too-high"),
        pytest.param([{**ROW, "body_mass_g": -1.0}], [(0, "body_mass_g", "out_of_range")], id="too-low"),
        pytest.param([{**ROW, "body_mass_g": 10**400}], [(0, "body_mass_g", "out_of_range")], id="huge-int"),
        pytest.param(
            [{**ROW, "island": "Atlantis"}], [(0, "island", "unknown_category")], id="unknown-category"
        ),
        pytest.param([{**ROW, "island": ""}], [(0, "island", "unknown_category")], id="empty-category"),
        pytest.param([ROW, "not a row"], [(1, "instances", "wrong_type")], id="row-not-object"),
    ],
)
def test_each_bad_value_is_named_by_row_field_and_code(
    validator: Validator, rows: list[Any], expected: list[tuple[int, str, str]]
) -> None:
    # GIVEN a request with exactly one kind of bad value
    # WHEN it is validated
    err = refused(validator, rows)
    # THEN it is a 422 that names the row, the field and the kind of problem
    assert err.status == 422
    assert err.code == "validation_failed"
    assert details(err) == expected
    assert all(d.message for d in err.details)


def test_all_problems_are_reported_at_once_in_row_order(validator: Validator) -> None:
    # GIVEN several rows with different problems
    rows = [
        ROW,
        {**ROW, "island": "Atlantis", "body_mass_g": None},
        {**ROW, "sex": "unknown", "bill_depth_mm": 99.0},
    ]
    # WHEN validated
    err = refused(validator, rows)
    # THEN every problem is listed, ordered by row
    assert sorted(details(err)) == [
        (1, "island", "unknown_category"),
        (2, "bill_depth_mm", "out_of_range"),
        (2, "sex", "unknown_category"),
    ]
    assert [d.row for d in err.details] == sorted(d.row for d in err.details if d.row is not None)
    assert err.message == "3 invalid value(s) in 2 row(s)"


def test_error_list_is_capped_and_says_so(validator: Validator) -> None:
    # GIVEN more bad values than the configured cap (10)
    rows = [{**ROW, "island": "Atlantis"}] * 30
    # WHEN validated
    err = refused(validator, rows)
    # THEN the body stays bounded and says it was truncated
    assert len(err.details) == 10
    assert err.truncated is True
    assert err.body()["error"]["truncated"] is True


def test_zero_rows_is_invalid(validator: Validator) -> None:
    err = refused(validator, [])
    assert (err.status, details(err)) == (422, [(None, "instances", "empty")])


def test_too_many_rows_is_413_before_any_column_work(validator: Validator) -> None:
    # GIVEN 51 rows against a limit of 50, all of them garbage
    err = refused(validator, [{"junk": object()}] * 51)
    # THEN the row count alone decides: 413 too_many_rows
    assert (err.status, err.code) == (413, "too_many_rows")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([ROW], "malformed_request"),
        ({"rows": [ROW]}, "malformed_request"),
        ({"instances": {"island": "Biscoe"}}, "malformed_request"),
        ("instances", "malformed_request"),
    ],
)
def test_wrong_top_level_shape_is_400(body: object, code: str) -> None:
    with pytest.raises(ServingError) as info:
        decode(body)
    assert (info.value.status, info.value.code) == (400, code)


@pytest.fixture(scope="module")
def service(penguins_dir: Path) -> Service:
    settings = Settings(
        model_dir=penguins_dir,
        max_rows=100,
        max_body_bytes=500_000,
        max_error_details=10,
        ort_intra_op_threads=1,
    )
    return Service.from_settings(settings)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "malformed_request"),
        (b'{"instances": [', 400, "malformed_request"),
        (b"\xff\xfe not utf-8", 400, "malformed_request"),
        (b"[" * 200_000 + b"]" * 200_000, 400, "malformed_request"),
        (b'{"instances": []}' + b" " * 600_000, 413, "body_too_large"),
    ],
)
def test_unparseable_or_oversized_bodies(service: Service, raw: bytes, status: int, code: str) -> None:
    # GIVEN a body that is empty, truncated, not UTF-8, nested past the parser, or over the limit
    with pytest.raises(ServingError) as info:
        read_json(raw, service.settings.max_body_bytes)
    # THEN it is refused with the right status, never an exception escaping
    assert (info.value.status, info.value.code) == (status, code)


def test_golden_rows_all_validate(service: Service, penguins_dir: Path) -> None:
    # GIVEN the model's own golden inputs THEN the contract accepts every one of them
    assert service.validator.validate(golden_rows(penguins_dir)).rows == len(golden_rows(penguins_dir))
