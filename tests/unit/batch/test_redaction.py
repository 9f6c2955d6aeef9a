"""Rows rejected by the batch path go to errors.jsonl through the configured Redactor: a redacted
field's value never appears there (nor in the messages about it); other fields stay as they were."""

from __future__ import annotations

import json
from typing import Any

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.scoring import score_object
from onnxlambda.contract.redaction import REDACTED, Redactor
from onnxlambda.serving.service import Service

BUCKET = "batch-redaction-test"
SECRET_CATEGORY = "Atlantis-4471-SECRET"
SECRET_NUMBER = 876543.219  # out of range for body_mass_g
PLAIN_OUT_OF_RANGE = 999.25  # bill_length_mm is not redacted: its value stays in the message


def errors_of(
    s3: Any, service: Service, key: str, data: bytes, redactor: Redactor
) -> tuple[bytes, dict[str, Any]]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    summary = score_object(
        s3, service.runtime, service.validator, BatchConfig(), bucket=BUCKET, key=key, redactor=redactor
    )
    errors = s3.get_object(Bucket=BUCKET, Key=summary["output"]["errors"])["Body"].read()
    return bytes(errors), summary


def bad_rows(service: Service) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = sample_rows(service.manifest, 6, seed=3)
    rows[1]["island"] = SECRET_CATEGORY  # unknown_category, message quotes the value
    rows[2]["body_mass_g"] = SECRET_NUMBER  # out_of_range, message quotes the value
    rows[3]["bill_length_mm"] = PLAIN_OUT_OF_RANGE
    return rows


REDACT = Redactor.of(["island", "body_mass_g"])


def test_jsonl_errors_carry_codes_but_no_redacted_value(s3: Any, penguins: Service) -> None:
    # GIVEN JSON lines with bad values in two redacted fields, one plain bad value, and a broken
    # line that quotes a secret
    lines = jsonl_bytes(bad_rows(penguins)).splitlines(keepends=True)
    lines.append(f'{{"island": "{SECRET_CATEGORY}", \n'.encode())
    # WHEN scored with island and body_mass_g redacted
    errors, summary = errors_of(s3, penguins, "incoming/r.jsonl", b"".join(lines), REDACT)
    # THEN every bad row is in the errors file with its code, and no secret appears anywhere
    assert summary["rows"] == {"read": 7, "scored": 3, "rejected": 4}
    text = errors.decode()
    assert SECRET_CATEGORY not in text
    assert str(SECRET_NUMBER) not in text
    out = [json.loads(line) for line in text.splitlines()]
    assert [(e["row"], [x["code"] for x in e["errors"]]) for e in out] == [
        (2, ["unknown_category"]),
        (3, ["out_of_range"]),
        (4, ["out_of_range"]),
        (7, ["malformed_json"]),
    ]
    assert out[0]["input"]["island"] == REDACTED
    assert out[1]["input"]["body_mass_g"] == REDACTED
    assert out[1]["input"]["island"] == REDACTED  # a redacted field is redacted in every row
    # AND a plain field keeps its value and message, a line that is not JSON is withheld whole
    assert out[2]["input"]["bill_length_mm"] == PLAIN_OUT_OF_RANGE
    assert str(PLAIN_OUT_OF_RANGE) in out[2]["errors"][0]["message"]
    assert out[3]["input"] == REDACTED


def test_csv_errors_carry_codes_but_no_redacted_value(s3: Any, penguins: Service) -> None:
    # GIVEN CSV rows with the same bad values, plus a record with one field too many
    names = penguins.manifest.feature_names
    data = csv_bytes(bad_rows(penguins), names) + f"{SECRET_CATEGORY},1,2,3,4,male,extra\n".encode()
    errors, summary = errors_of(s3, penguins, "incoming/r.csv", data, REDACT)
    # THEN the same rows are rejected, and no secret appears
    assert summary["rows"]["rejected"] == 4
    text = errors.decode()
    assert SECRET_CATEGORY not in text
    assert str(SECRET_NUMBER) not in text
    out = [json.loads(line) for line in text.splitlines()]
    assert [e["errors"][0]["code"] for e in out] == [
        "unknown_category",
        "out_of_range",
        "out_of_range",
        "wrong_field_count",
    ]
    assert out[3]["input"] == REDACTED  # cells that cannot be matched to columns: withheld


def test_without_redaction_the_errors_file_keeps_the_raw_input(s3: Any, penguins: Service) -> None:
    # GIVEN the same JSON lines and no redacted fields (the default)
    errors, _ = errors_of(s3, penguins, "incoming/plain.jsonl", jsonl_bytes(bad_rows(penguins)), Redactor())
    # THEN the input is there to fix the row (what the redaction test above takes away)
    assert SECRET_CATEGORY in errors.decode()
    assert str(SECRET_NUMBER) in errors.decode()
