"""Scoring one S3 object end to end in-process, against moto's S3: outputs, errors, summaries,
retries, unreadable files, the recursion guard and the time budget."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devtools.batchdata import csv_bytes, jsonl_bytes, sample_rows
from onnxlambda.batch.config import BatchConfig, output_keys, refusal
from onnxlambda.batch.scoring import score_object
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.serving.validation import Validator
from onnxlambda.settings import Settings

BUCKET = "batch-unit-test"
CONFIG = BatchConfig(chunk_rows=100)


def run(s3: Any, service: Service, key: str, data: bytes, **kw: Any) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    config = kw.pop("config", CONFIG)
    return score_object(s3, service.runtime, service.validator, config, bucket=BUCKET, key=key, **kw)


def score_again(s3: Any, service: Service, key: str, **kw: Any) -> dict[str, Any]:
    """Score an object already in the bucket, as a (re)delivered event does."""
    return score_object(s3, service.runtime, service.validator, CONFIG, bucket=BUCKET, key=key, **kw)


def read(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def keys_under(s3: Any, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def api_predictions(service: Service, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(rows), 1000):
        body = service.predict({"instances": rows[start : start + 1000]})
        out += body["predictions"]
    return out


def test_csv_is_scored_like_the_api_scores_it(s3: Any, penguins: Service) -> None:
    # GIVEN 250 valid rows as CSV, columns in a different order, with an id column
    rows = sample_rows(penguins.manifest, 250, seed=1)
    with_ids = [{**r, "id": f"p{i}"} for i, r in enumerate(rows)]
    data = csv_bytes(with_ids, ["id", *penguins.manifest.feature_names[::-1]])
    # WHEN the object is scored (in chunks of 100)
    summary = run(s3, penguins, "incoming/day1/penguins.csv", data)
    # THEN every row is scored, in order, with its row number, id and the API's prediction
    assert summary["status"] == "succeeded"
    assert summary["rows"] == {"read": 250, "scored": 250, "rejected": 0}
    out = list(csv.DictReader(io.StringIO(read(s3, summary["output"]["scored"]).decode())))
    expected = api_predictions(penguins, rows)
    assert [int(o["row"]) for o in out] == list(range(1, 251))
    assert [o["id"] for o in out] == [f"p{i}" for i in range(250)]
    assert [o["label"] for o in out] == [e["label"] for e in expected]
    for o, e in zip(out, expected, strict=True):
        for label, p in e["probabilities"].items():
            assert float(o[f"probability_{label}"]) == pytest.approx(p, abs=2e-6)
    # AND an empty errors file and a summary beside it, keyed by input key, ETag and model version
    etag = s3.head_object(Bucket=BUCKET, Key="incoming/day1/penguins.csv")["ETag"].strip('"')
    base = f"scored/day1/penguins.csv/etag={etag}/model=penguins-1.0.0/"
    assert keys_under(s3, "scored/") == [base + "errors.jsonl", base + "scored.csv", base + "summary.json"]
    assert read(s3, base + "errors.jsonl") == b""
    assert json.loads(read(s3, base + "summary.json")) == summary
    assert summary["model"]["sha256"] == penguins.manifest.sha256


def test_jsonl_is_scored_with_the_api_row_shape(s3: Any, penguins: Service) -> None:
    rows = sample_rows(penguins.manifest, 30, seed=2)
    summary = run(s3, penguins, "incoming/p.jsonl", jsonl_bytes([{**r, "id": i} for i, r in enumerate(rows)]))
    out = [json.loads(line) for line in read(s3, summary["output"]["scored"]).splitlines()]
    expected = api_predictions(penguins, rows)
    assert summary["output"]["scored"].endswith("/scored.jsonl")
    assert [(o["row"], o["id"], o["label"]) for o in out] == [
        (i + 1, i, e["label"]) for i, e in enumerate(expected)
    ]
    assert out[0]["probabilities"].keys() == expected[0]["probabilities"].keys()


def test_bad_rows_go_to_the_errors_file_and_the_rest_is_scored(s3: Any, penguins: Service) -> None:
    # GIVEN 300 rows of which rows 5, 150 and 299 are bad in different ways, then a short row 301
    rows: list[dict[str, Any]] = sample_rows(penguins.manifest, 300, seed=3)
    rows[4]["island"] = "Atlantis"
    rows[149]["bill_length_mm"] = "long"
    rows[298]["body_mass_g"] = 99999.0
    rows[298]["island"] = None
    data = csv_bytes(rows, penguins.manifest.feature_names) + b"Biscoe,40\n"
    # WHEN scored
    summary = run(s3, penguins, "incoming/mixed.csv", data)
    # THEN the bad rows are listed with their row numbers and every reason, the rest scored
    assert summary["rows"] == {"read": 301, "scored": 297, "rejected": 4}
    errors = [json.loads(line) for line in read(s3, summary["output"]["errors"]).splitlines()]
    assert [(e["row"], sorted(x["code"] for x in e["errors"])) for e in errors] == [
        (5, ["unknown_category"]),
        (150, ["wrong_type"]),
        (299, ["null_not_allowed", "out_of_range"]),
        (301, ["wrong_field_count"]),
    ]
    assert errors[0]["input"]["island"] == "Atlantis"  # the raw row, so nothing is lost
    scored_rows = [
        int(r["row"]) for r in csv.DictReader(io.StringIO(read(s3, summary["output"]["scored"]).decode()))
    ]
    assert set(scored_rows) | {e["row"] for e in errors} == set(range(1, 302))
    assert summary["rejected_by_code"] == {
        "null_not_allowed": 1,
        "out_of_range": 1,
        "unknown_category": 1,
        "wrong_field_count": 1,
        "wrong_type": 1,
    }


def test_retry_of_the_same_object_overwrites_instead_of_duplicating(s3: Any, penguins: Service) -> None:
    data = csv_bytes(sample_rows(penguins.manifest, 20), penguins.manifest.feature_names)
    first = run(s3, penguins, "incoming/r.csv", data)
    before = {k: read(s3, k) for k in keys_under(s3, "scored/")}
    # WHEN the same event is delivered again
    second = score_object(
        s3, penguins.runtime, penguins.validator, CONFIG, bucket=BUCKET, key="incoming/r.csv"
    )
    # THEN the same three keys hold the same scored and errors bytes
    assert second["output"] == first["output"]
    after = {k: read(s3, k) for k in keys_under(s3, "scored/")}
    assert after.keys() == before.keys()
    assert len(after) == 3
    assert after[first["output"]["scored"]] == before[first["output"]["scored"]]


@pytest.mark.parametrize(
    ("key", "data", "code"),
    [
        ("incoming/empty.csv", b"", "empty"),
        ("incoming/random.csv", bytes(range(128, 256)) * 64, "wrong_encoding"),
        ("incoming/zipped.csv", b"\x1f\x8b\x08\x00" + bytes(100), "corrupt"),
        ("incoming/noheader.csv", b"Biscoe,39.1,18.7,181,3750,male\n", "no_header"),
        ("incoming/latin1.csv", "island\nZürich\n".encode("latin-1"), "wrong_encoding"),
        ("incoming/data.xlsx", b"PK\x03\x04", "unknown_format"),
        ("incoming/empty.jsonl", b"", "empty"),
    ],
)
def test_unreadable_files_get_an_error_report_and_the_input_is_untouched(
    s3: Any, penguins: Service, key: str, data: bytes, code: str
) -> None:
    # WHEN a file that cannot be read at all is scored
    summary = run(s3, penguins, key, data)
    # THEN a failed summary names the reason; no scored or errors file; the input is unchanged
    assert summary["status"] == "failed"
    assert summary["error"]["code"] == code
    assert keys_under(s3, "scored/") == [summary["output"]["summary"]]
    assert json.loads(read(s3, summary["output"]["summary"]))["error"]["code"] == code
    assert read(s3, key) == data
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET)


def test_a_header_only_file_succeeds_with_zero_rows(s3: Any, penguins: Service) -> None:
    header = (",".join(penguins.manifest.feature_names) + "\n").encode()
    summary = run(s3, penguins, "incoming/header.csv", header)
    assert summary["status"] == "succeeded"
    assert summary["rows"] == {"read": 0, "scored": 0, "rejected": 0}
    assert read(s3, summary["output"]["scored"]).decode().splitlines() == [
        "row,label,probability_Adelie,probability_Chinstrap,probability_Gentoo"
    ]
    assert summary["drift"]["output"]["psi"] is None


def test_summary_reports_drift_per_feature_and_for_the_output(s3: Any, penguins: Service) -> None:
    # GIVEN rows drawn from the manifest's own baselines, and the same rows with heavier penguins
    rows = sample_rows(penguins.manifest, 4000, seed=4)
    same = run(s3, penguins, "incoming/same.csv", csv_bytes(rows, penguins.manifest.feature_names))
    heavy = [{**r, "body_mass_g": 6000.0} for r in rows]
    shifted = run(s3, penguins, "incoming/heavy.csv", csv_bytes(heavy, penguins.manifest.feature_names))
    # THEN the baseline-like file shows no drift, and the shifted feature does
    features = same["drift"]["features"]
    assert set(features) == set(penguins.manifest.feature_names)
    assert all(f["psi"] < 0.1 for f in features.values()), features
    assert same["drift"]["output"]["psi"] is not None
    assert shifted["drift"]["features"]["body_mass_g"]["psi"] > 0.25
    assert shifted["drift"]["features"]["island"]["psi"] < 0.1


def test_a_regression_model_goes_through_the_same_code(s3: Any, diabetes_dir: Path) -> None:
    service = Service(ModelRuntime.load(diabetes_dir), Settings.from_env())
    rows = sample_rows(service.manifest, 40, seed=5)
    summary = run(s3, service, "incoming/d.csv", csv_bytes(rows, service.manifest.feature_names))
    out = list(csv.DictReader(io.StringIO(read(s3, summary["output"]["scored"]).decode())))
    expected = api_predictions(service, rows)
    assert [float(o["disease_progression"]) for o in out] == pytest.approx(
        [e["disease_progression"] for e in expected]
    )
    assert summary["drift"]["output"]["count"] == 40


def test_output_keys_and_events_outside_the_input_prefix_are_refused(s3: Any, penguins: Service) -> None:
    data = csv_bytes(sample_rows(penguins.manifest, 3), penguins.manifest.feature_names)
    for key in ("scored/x.csv/etag=1/model=penguins-1.0.0/scored.csv", "elsewhere/x.csv", "incoming/dir/"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        summary = score_object(s3, penguins.runtime, penguins.validator, CONFIG, bucket=BUCKET, key=key)
        assert summary["status"] == "refused"
    # THEN nothing new was written under the output prefix beyond the object put by the test
    assert keys_under(s3, "scored/") == ["scored/x.csv/etag=1/model=penguins-1.0.0/scored.csv"]


def test_refusal_rules() -> None:
    cfg = BatchConfig(bucket="mine")
    assert refusal(cfg, "mine", "incoming/a.csv") is None
    assert refusal(cfg, "other", "incoming/a.csv") is not None
    assert refusal(cfg, "mine", "scored/a.csv") is not None


@pytest.mark.parametrize(("inp", "out"), [("in/", "in/"), ("in/", "in/out/"), ("data/out/", "data/")])
def test_overlapping_prefixes_are_refused_at_configuration(inp: str, out: str) -> None:
    with pytest.raises(ValueError, match="overlap"):
        BatchConfig(input_prefix=inp, output_prefix=out)


def test_output_keys_are_deterministic(penguins: Service) -> None:
    a = output_keys(CONFIG, "incoming/x/y.csv", "abc", penguins.manifest, "csv")
    b = output_keys(CONFIG, "incoming/x/y.csv", "abc", penguins.manifest, "csv")
    c = output_keys(CONFIG, "incoming/x/y.csv", "abd", penguins.manifest, "csv")
    assert a == b
    assert a.scored == "scored/x/y.csv/etag=abc/model=penguins-1.0.0/scored.csv"
    assert c.scored != a.scored


def test_running_out_of_time_fails_with_a_clear_report(s3: Any, penguins: Service) -> None:
    # GIVEN a file of 5 chunks and a clock that runs out after the second chunk
    data = csv_bytes(sample_rows(penguins.manifest, 500), penguins.manifest.feature_names)
    clock = iter([900_000, 900_000, 10_000, 10_000, 10_000])
    config = BatchConfig(chunk_rows=100, time_margin_ms=20_000, part_bytes=5 * 1024 * 1024)
    # WHEN scored
    summary = run(s3, penguins, "incoming/slow.csv", data, config=config, remaining_ms=lambda: next(clock))
    # THEN it stops before the deadline with a failed report; no partial scored file remains
    assert summary["status"] == "failed"
    assert summary["error"]["code"] == "time_budget_exceeded"
    assert summary["rows"]["read"] == 200
    assert keys_under(s3, "scored/") == [summary["output"]["summary"]]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET)


def test_an_object_over_the_size_limit_is_refused_up_front(s3: Any, penguins: Service) -> None:
    # GIVEN a size limit below the file's size
    data = csv_bytes(sample_rows(penguins.manifest, 50), penguins.manifest.feature_names)
    config = BatchConfig(max_bytes=len(data) - 1)
    # WHEN scored THEN it fails at once with a clear reason and reads no row
    summary = run(s3, penguins, "incoming/huge.csv", data, config=config)
    assert summary["error"]["code"] == "too_large"
    assert summary["rows"]["read"] == 0
    # AND a file at the limit is scored
    assert (
        run(s3, penguins, "incoming/ok.csv", data, config=BatchConfig(max_bytes=len(data)))["status"]
        == "succeeded"
    )


def test_a_missing_object_is_a_permanent_failure_not_a_retry(s3: Any, penguins: Service) -> None:
    # GIVEN an event for an object deleted before it could be scored
    # WHEN scored
    summary = score_object(
        s3, penguins.runtime, penguins.validator, CONFIG, bucket=BUCKET, key="incoming/gone.csv", etag="abc"
    )
    # THEN nothing is raised (a retry would find it gone again): a failed summary says why,
    # under the key the event's ETag names, and nothing else is written
    assert summary["status"] == "failed"
    assert summary["error"]["code"] == "not_found"
    assert "NoSuchKey" in summary["error"]["message"]
    assert summary["input"]["etag"] == "abc"
    assert keys_under(s3, "scored/") == ["scored/gone.csv/etag=abc/model=penguins-1.0.0/summary.json"]


def test_a_removed_version_is_a_permanent_failure_too(s3: Any, penguins: Service) -> None:
    # GIVEN a versioned bucket and an event naming a version that no longer exists
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    data = csv_bytes(sample_rows(penguins.manifest, 3), penguins.manifest.feature_names)
    version = s3.put_object(Bucket=BUCKET, Key="incoming/v.csv", Body=data)["VersionId"]
    s3.delete_object(Bucket=BUCKET, Key="incoming/v.csv", VersionId=version)
    # WHEN scored THEN the failure is permanent and named
    summary = score_object(
        s3,
        penguins.runtime,
        penguins.validator,
        CONFIG,
        bucket=BUCKET,
        key="incoming/v.csv",
        version_id=version,
    )
    assert (summary["status"], summary["error"]["code"]) == ("failed", "not_found")


def test_an_object_already_scored_is_skipped_not_redone(s3: Any, penguins: Service) -> None:
    # GIVEN a file scored once (the bucket versioned, so every rewrite would show)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    data = csv_bytes(sample_rows(penguins.manifest, 20), penguins.manifest.feature_names)
    first = run(s3, penguins, "incoming/once.csv", data)
    # WHEN the same event is delivered again (a retry of an event with another, failed record)
    again = score_object(
        s3, penguins.runtime, penguins.validator, CONFIG, bucket=BUCKET, key="incoming/once.csv"
    )
    # THEN it is skipped, pointing at the outputs of the first run, and nothing is rewritten
    assert again["status"] == "skipped"
    assert again["output"] == first["output"]
    assert again["rows"] == first["rows"]
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="scored/once.csv/")["Versions"]
    assert len(versions) == 3


def test_a_new_model_or_a_failed_run_is_scored_again(s3: Any, penguins: Service) -> None:
    # GIVEN a file scored by this model, and a header-less file that failed
    rows = sample_rows(penguins.manifest, 5)
    run(s3, penguins, "incoming/m.csv", csv_bytes(rows, penguins.manifest.feature_names))
    bad = run(s3, penguins, "incoming/bad.csv", b"Biscoe,39.1,18.7,181,3750,male\n")
    assert bad["status"] == "failed"
    # WHEN the same version string comes with other model bytes (another sha256), or the failed
    # file's event is delivered again
    other = ModelRuntime(
        replace(penguins.manifest, sha256="0" * 64), penguins.runtime.session, penguins.runtime.model_dir
    )
    rescored = score_object(s3, other, penguins.validator, CONFIG, bucket=BUCKET, key="incoming/m.csv")
    retried = score_object(
        s3, penguins.runtime, penguins.validator, CONFIG, bucket=BUCKET, key="incoming/bad.csv"
    )
    # THEN both are scored again: only a success with the same bytes and model is final
    assert rescored["status"] == "succeeded"
    assert rescored["model"]["sha256"] == "0" * 64
    assert retried["status"] == "failed"


@pytest.mark.parametrize("records", [2_000, 10_000], ids=["under-the-csv-field-limit", "over-it"])
def test_an_unclosed_quote_loses_no_row_and_every_line_adds_up(
    s3: Any, penguins: Service, records: int
) -> None:
    # GIVEN the file: an opening quote never closed at record 1,000, no id column
    header = ",".join(penguins.manifest.feature_names)
    lines = [header] + ["Biscoe,37.7,18.7,180,3600,male"] * records
    lines[1000] = '"' + lines[1000]
    # WHEN scored
    summary = run(s3, penguins, "incoming/unclosed.csv", ("\n".join(lines) + "\n").encode())
    # THEN record 1,000 is rejected on line 1,001 with its raw text; every other row is scored
    assert summary["status"] == "succeeded"
    assert summary["rows"] == {"read": records, "scored": records - 1, "rejected": 1}
    assert summary["lines"] == {
        "total": records + 1,
        "header": 1,
        "blank": 0,
        "scored": records - 1,
        "rejected": 1,
    }
    [error] = [json.loads(line) for line in read(s3, summary["output"]["errors"]).splitlines()]
    assert (error["row"], error["line"], error["input"]) == (1000, 1001, lines[1000])
    assert error["errors"][0]["code"] == "malformed_csv"
    scored = csv.DictReader(io.StringIO(read(s3, summary["output"]["scored"]).decode()))
    assert [int(r["row"]) for r in scored] == [n for n in range(1, records + 1) if n != 1000]


def test_rows_spanning_lines_and_blank_lines_are_counted_in_the_summary(s3: Any, penguins: Service) -> None:
    # GIVEN an id with a line break on a bad row (unknown island), blank lines, and a short row
    names = penguins.manifest.feature_names
    rows = [{**r, "id": f"r{i}"} for i, r in enumerate(sample_rows(penguins.manifest, 3, seed=12))]
    rows[1]["island"] = "Atlantis"
    rows[1]["id"] = "two\nlines"
    data = csv_bytes(rows, ["id", *names]) + b"\n  \nx,Biscoe\n"
    # WHEN scored
    summary = run(s3, penguins, "incoming/spans.csv", data)
    # THEN the two-line row is rejected with the lines it covers; the counts add up to the file
    errors = [json.loads(line) for line in read(s3, summary["output"]["errors"]).splitlines()]
    assert [(e["row"], e["line"], e.get("end_line")) for e in errors] == [(2, 3, 4), (4, 8, None)]
    assert summary["rows"] == {"read": 4, "scored": 2, "rejected": 2}
    assert summary["lines"] == {"total": 8, "header": 1, "blank": 2, "scored": 2, "rejected": 3}


def test_large_outputs_use_multipart_parts(s3: Any, penguins: Service) -> None:
    # GIVEN enough rows that the scored file exceeds one 5 MiB part
    rows = sample_rows(penguins.manifest, 160_000, seed=6)
    config = BatchConfig(chunk_rows=20_000, part_bytes=5 * 1024 * 1024)
    summary = run(
        s3, penguins, "incoming/big.csv", csv_bytes(rows, penguins.manifest.feature_names), config=config
    )
    head = s3.head_object(Bucket=BUCKET, Key=summary["output"]["scored"])
    # THEN the object was assembled from parts (multipart ETag "<md5>-<parts>") and holds every row
    assert head["ETag"].strip('"').endswith("-2")
    assert read(s3, summary["output"]["scored"]).count(b"\n") == 160_001


def test_the_partial_validator_keeps_the_api_all_or_nothing(penguins: Service) -> None:
    rows: list[dict[str, Any]] = sample_rows(penguins.manifest, 4, seed=7)
    rows[1]["sex"] = "unknown"
    validator: Validator = penguins.validator
    partial = validator.validate_partial(rows)
    assert partial.good.tolist() == [0, 2, 3]
    assert [e.code for e in partial.errors[1]] == ["unknown_category"]
    assert all(c.shape == (3,) for c in partial.columns.values())
    with pytest.raises(Exception, match="validation_failed"):
        validator.validate(rows)


def test_ids_that_need_csv_quoting_round_trip(s3: Any, penguins: Service) -> None:
    # GIVEN ids with commas, quotes and a newline
    ids = ["a,b", 'say "hi"', "two\nlines", "plain"]
    rows = [{**r, "id": i} for r, i in zip(sample_rows(penguins.manifest, 4), ids, strict=True)]
    summary = run(
        s3, penguins, "incoming/quoted.csv", csv_bytes(rows, ["id", *penguins.manifest.feature_names])
    )
    # THEN the scored CSV parses back to exactly those ids
    out = list(csv.DictReader(io.StringIO(read(s3, summary["output"]["scored"]).decode())))
    assert [o["id"] for o in out] == ids


def test_jsonl_keys_that_are_not_features_reject_the_row_when_the_manifest_says_so(
    s3: Any, penguins: Service
) -> None:
    rows: list[dict[str, Any]] = sample_rows(penguins.manifest, 3, seed=8)
    rows[1]["colour"] = "blue"
    summary = run(s3, penguins, "incoming/extra.jsonl", jsonl_bytes(rows))
    errors = [json.loads(line) for line in read(s3, summary["output"]["errors"]).splitlines()]
    assert [(e["row"], e["errors"][0]["code"]) for e in errors] == [(2, "unknown_feature")]
    assert summary["rows"] == {"read": 3, "scored": 2, "rejected": 1}


def test_batch_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ONNXLAMBDA_BATCH_INPUT_PREFIX": "in/",
        "ONNXLAMBDA_BATCH_OUTPUT_PREFIX": "out/",
        "ONNXLAMBDA_BATCH_CHUNK_ROWS": "500",
        "ONNXLAMBDA_BATCH_TIME_MARGIN_MS": "1000",
        "ONNXLAMBDA_BATCH_ID_COLUMN": "",
        "ONNXLAMBDA_BATCH_MAX_BYTES": "10",
        "ONNXLAMBDA_BATCH_MAX_TEXT_CELL_CHARS": "2000",
    }.items():
        monkeypatch.setenv(name, value)
    cfg = BatchConfig.from_env()
    assert (cfg.input_prefix, cfg.output_prefix, cfg.chunk_rows) == ("in/", "out/", 500)
    assert (cfg.time_margin_ms, cfg.id_column, cfg.max_bytes) == (1000, None, 10)
    assert cfg.max_text_cell_chars == 2000
