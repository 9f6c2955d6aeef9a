"""The built BatchFunction under the real Lambda runtime (RIE + awslambdaric), talking to moto's
S3 in server mode on loopback: upload, S3 put event, scored output, errors file, summary."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from devtools import batchload
from devtools.batchdata import csv_bytes, csv_stream, jsonl_bytes, sample_rows
from devtools.motoserver import function_env, moto_s3
from devtools.procmem import peak_rss_mb, reset_peak, runtime_pid
from devtools.rie import BuiltFunction, EmulatedFunction
from onnxlambda.contract.manifest import Manifest, load_manifest
from tests.conftest import load_event

EVENT = load_event("s3_put_csv")
BUCKET = EVENT["Records"][0]["s3"]["bucket"]["name"]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[tuple[str, Any]]:
    with moto_s3(BUCKET, versioned=True) as server:
        yield server


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: tuple[str, Any]) -> str:
    return moto_server[0]


@pytest.fixture(scope="module")
def s3(moto_server: tuple[str, Any]) -> Any:
    return moto_server[1]


def emulator_env(moto_endpoint: str, **extra: str) -> dict[str, str]:
    return function_env(moto_endpoint, ONNXLAMBDA_BATCH_PART_BYTES=str(5 * 1024 * 1024), **extra)


@pytest.fixture(scope="module")
def batch_function(build_dir: Path) -> BuiltFunction:
    return BuiltFunction.from_build("BatchFunction", build_dir)


@pytest.fixture(scope="module")
def batch(batch_function: BuiltFunction, moto_endpoint: str, s3: Any) -> Iterator[EmulatedFunction]:
    with EmulatedFunction(batch_function, extra_env=emulator_env(moto_endpoint)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def manifest(batch_function: BuiltFunction) -> Manifest:
    model_dir = next(d / "model" for d in batch_function.layer_dirs if (d / "model").is_dir())
    return load_manifest(model_dir)


def put_event(s3: Any, key: str, data: bytes) -> dict[str, Any]:
    """Upload an object and build the S3 put event for it from events/s3_put_csv.json."""
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    event = copy.deepcopy(EVENT)
    obj = event["Records"][0]["s3"]["object"]
    obj.update(key=quote_plus(key, safe="/"), size=len(data), eTag=answer["ETag"].strip('"'))
    obj["versionId"] = answer.get("VersionId")
    return event


def invoke(batch: EmulatedFunction, event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = batch.invoke(event, timeout=300)
    assert "errorMessage" not in answer, answer
    [result] = answer["results"]
    return dict(result)


def get(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def summary_of(s3: Any, result: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(get(s3, result["summary"]))
    return summary


def listing(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.mark.parametrize("name", ["s3_put_csv", "s3_put_jsonl"])
def test_the_event_files_score_their_objects(
    s3: Any, batch: EmulatedFunction, manifest: Manifest, name: str
) -> None:
    # GIVEN the object an events/ payload (as `sam local generate-event s3 put` wrote it) names
    event = load_event(name)
    key = event["Records"][0]["s3"]["object"]["key"]
    rows = sample_rows(manifest, 100, seed=20)
    data = csv_bytes(rows, manifest.feature_names) if key.endswith(".csv") else jsonl_bytes(rows)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    # WHEN the payload is sent to the built function as is
    result = invoke(batch, event)
    # THEN all rows are scored and the three output objects exist
    assert result["status"] == "succeeded"
    assert result["rows"] == {"read": 100, "scored": 100, "rejected": 0}
    summary = summary_of(s3, result)
    assert len(listing(s3, summary["output"]["prefix"])) == 3
    assert get(s3, summary["output"]["scored"]).count(b"\n") == 100 + (key.endswith(".csv"))


def test_happy_csv_with_reordered_columns_and_ids(
    s3: Any, batch: EmulatedFunction, manifest: Manifest
) -> None:
    # GIVEN 500 rows with an id column and the feature columns in reverse order
    rows = sample_rows(manifest, 500, seed=21)
    data = csv_bytes(
        [{**r, "id": f"r{i}"} for i, r in enumerate(rows)], ["id", *manifest.feature_names[::-1]]
    )
    # WHEN the put event reaches the built function
    result = invoke(batch, put_event(s3, "incoming/happy/reordered.csv", data))
    # THEN every row is scored with its row number and id, and the summary says so
    assert result["status"] == "succeeded"
    summary = summary_of(s3, result)
    assert summary["rows"] == {"read": 500, "scored": 500, "rejected": 0}
    assert summary["model"]["sha256"] == manifest.sha256
    assert summary["input"]["version_id"]
    scored = list(csv.DictReader(io.StringIO(get(s3, summary["output"]["scored"]).decode())))
    assert [(int(r["row"]), r["id"]) for r in scored] == [(i + 1, f"r{i}") for i in range(500)]
    assert {r["label"] for r in scored} <= {"Adelie", "Chinstrap", "Gentoo"}
    assert get(s3, summary["output"]["errors"]) == b""
    assert set(summary["drift"]["features"]) == set(manifest.feature_names)


def test_happy_jsonl_with_bad_rows_mixed_in(s3: Any, batch: EmulatedFunction, manifest: Manifest) -> None:
    # GIVEN 200 JSON lines where line 10 is not JSON, row 50 has an unknown island, row 120 a string mass
    rows: list[dict[str, Any]] = sample_rows(manifest, 200, seed=22)
    rows[49]["island"] = "Atlantis"
    rows[119]["body_mass_g"] = "heavy"
    lines = jsonl_bytes(rows).splitlines(keepends=True)
    lines[9] = b'{"island": "Biscoe", \n'
    result = invoke(batch, put_event(s3, "incoming/mixed.jsonl", b"".join(lines)))
    # THEN the three bad rows are in the errors file with reasons, the other 197 are scored
    summary = summary_of(s3, result)
    assert summary["rows"] == {"read": 200, "scored": 197, "rejected": 3}
    errors = [json.loads(x) for x in get(s3, summary["output"]["errors"]).splitlines()]
    assert [(e["row"], [x["code"] for x in e["errors"]]) for e in errors] == [
        (10, ["malformed_json"]),
        (50, ["unknown_category"]),
        (120, ["wrong_type"]),
    ]
    scored = [json.loads(x) for x in get(s3, summary["output"]["scored"]).splitlines()]
    assert len(scored) == 197
    assert {s["row"] for s in scored} | {e["row"] for e in errors} == set(range(1, 201))


@pytest.mark.parametrize(
    ("key", "data", "code"),
    [
        ("incoming/corrupt.csv", bytes(range(256)) * 40, "corrupt"),
        ("incoming/latin1.csv", "island,sex\nZürich,male\n".encode("latin-1"), "wrong_encoding"),
        ("incoming/empty.csv", b"", "empty"),
    ],
    ids=["corrupt", "wrong-encoding", "empty"],
)
def test_unreadable_files_get_an_error_report(
    s3: Any, batch: EmulatedFunction, key: str, data: bytes, code: str
) -> None:
    result = invoke(batch, put_event(s3, key, data))
    # THEN a failed summary with the reason, no scored/errors file, and the input untouched
    assert result["status"] == "failed"
    assert result["error"]["code"] == code
    summary = summary_of(s3, result)
    assert listing(s3, summary["output"]["prefix"]) == [result["summary"]]
    assert get(s3, key) == data


def test_header_only_file_scores_zero_rows(s3: Any, batch: EmulatedFunction, manifest: Manifest) -> None:
    result = invoke(
        batch, put_event(s3, "incoming/header-only.csv", (",".join(manifest.feature_names) + "\n").encode())
    )
    assert result["status"] == "succeeded"
    assert result["rows"] == {"read": 0, "scored": 0, "rejected": 0}
    assert get(s3, summary_of(s3, result)["output"]["scored"]).count(b"\n") == 1  # the header


def test_retry_of_the_same_event_does_not_duplicate(
    s3: Any, batch: EmulatedFunction, manifest: Manifest
) -> None:
    event = put_event(s3, "incoming/retry.csv", csv_bytes(sample_rows(manifest, 50), manifest.feature_names))
    first = invoke(batch, event)
    prefix = summary_of(s3, first)["output"]["prefix"]
    before = {k: get(s3, k) for k in listing(s3, prefix)}
    # WHEN Lambda delivers the same event again (async retry)
    second = invoke(batch, event)
    # THEN the same three objects, same scored and errors content
    assert second["summary"] == first["summary"]
    after = {k: get(s3, k) for k in listing(s3, prefix)}
    assert len(after) == 3
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if not k.endswith("summary.json")} == {
        k: v for k, v in before.items() if not k.endswith("summary.json")
    }
    assert listing(s3, "scored/retry.csv/") == sorted(after)


def test_an_event_for_the_output_prefix_is_refused(s3: Any, batch: EmulatedFunction) -> None:
    before = listing(s3, "scored/")
    result = invoke(batch, load_event("s3_put_output_key"))
    assert result["status"] == "refused"
    assert listing(s3, "scored/") == before


def test_running_out_of_time_reports_instead_of_dying(
    s3: Any, batch_function: BuiltFunction, moto_endpoint: str, manifest: Manifest
) -> None:
    # GIVEN an environment whose safety margin exceeds the whole timeout (the budget is spent)
    env = emulator_env(moto_endpoint, ONNXLAMBDA_BATCH_TIME_MARGIN_MS=str(10**9))
    data = csv_bytes(sample_rows(manifest, 30), manifest.feature_names)
    with EmulatedFunction(batch_function, extra_env=env) as slow:
        result = invoke(slow, put_event(s3, "incoming/late.csv", data))
    # THEN a clear failed report, and no scored file
    assert result["status"] == "failed"
    assert result["error"]["code"] == "time_budget_exceeded"
    assert listing(s3, summary_of(s3, result)["output"]["prefix"]) == [result["summary"]]


def test_a_large_file_streams_in_flat_memory(
    s3: Any, batch: EmulatedFunction, manifest: Manifest, record_property: Any
) -> None:
    # GIVEN files of 50,000 and 200,000 rows (both write the scored file in several 5 MiB parts)
    peaks: dict[int, float] = {}
    for n in (150_000, 300_000):
        data = b"".join(csv_stream(manifest, n, seed=n))
        event = put_event(s3, f"incoming/large/{n}.csv", data)
        del data
        pid = runtime_pid(batch)
        reset_peak(pid)
        # WHEN each is scored by the warm function
        result = invoke(batch, event)
        peaks[n] = peak_rss_mb(pid)
        assert result["status"] == "succeeded"
        assert result["rows"] == {"read": n, "scored": n, "rejected": 0}
        head = s3.head_object(Bucket=BUCKET, Key=summary_of(s3, result)["output"]["scored"])
        assert "-" in head["ETag"]  # multipart
    record_property("peak_rss_mb", peaks)
    print(f"peak RSS of the runtime process (VmHWM): {peaks}")
    # THEN twice the rows uses about the same memory (the 300k file's text alone is ~13 MB)
    assert peaks[300_000] - peaks[150_000] < 10.0, peaks


# -- issue 13: no silent row loss, multi-record events, vanished objects ----------------------------


@pytest.mark.parametrize("records", [2_000, 10_000], ids=["under-the-csv-field-limit", "over-it"])
def test_an_unclosed_quote_costs_one_row_and_every_line_adds_up(
    s3: Any, batch: EmulatedFunction, manifest: Manifest, records: int
) -> None:
    # GIVEN the file: an opening quote never closed at record 1,000, no id column
    lines = [",".join(manifest.feature_names)] + ["Biscoe,37.7,18.7,180,3600,male"] * records
    lines[1000] = '"' + lines[1000]
    data = ("\n".join(lines) + "\n").encode()
    # WHEN the put event reaches the built function
    result = invoke(batch, put_event(s3, f"incoming/unclosed-{records}.csv", data))
    # THEN the one bad record is rejected where it starts, with its raw text; no other row is lost
    assert result["status"] == "succeeded"
    assert result["rows"] == {"read": records, "scored": records - 1, "rejected": 1}
    summary = summary_of(s3, result)
    lines_in_file = data.count(b"\n")
    assert summary["lines"] == {
        "total": lines_in_file,
        "header": 1,
        "blank": 0,
        "scored": records - 1,
        "rejected": 1,
    }
    [error] = [json.loads(x) for x in get(s3, summary["output"]["errors"]).splitlines()]
    assert (error["row"], error["line"], error["input"]) == (1000, 1001, lines[1000])
    scored = csv.DictReader(io.StringIO(get(s3, summary["output"]["scored"]).decode()))
    assert [int(r["row"]) for r in scored] == [n for n in range(1, records + 1) if n != 1000]


def event_for(s3: Any, *objects: tuple[str, str, bytes]) -> dict[str, Any]:
    """One S3 event with a record per (bucket, key, data); uploads the data of existing buckets."""
    records = []
    for bucket, key, data in objects:
        record = (
            put_event(s3, key, data)["Records"][0] if bucket == BUCKET else copy.deepcopy(EVENT["Records"][0])
        )
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"]["key"] = quote_plus(key, safe="/")
        records.append(record)
    return {"Records": records}


def versions_under(s3: Any, prefix: str) -> dict[str, int]:
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix=prefix).get("Versions", [])
    return {k: sum(1 for v in listing if v["Key"] == k) for k in {v["Key"] for v in listing}}


def test_a_multi_record_event_scores_every_record_and_the_retry_redoes_only_the_failed_one(
    s3: Any, batch: EmulatedFunction, manifest: Manifest
) -> None:
    # GIVEN a three-record event whose second object cannot be read yet (its bucket is missing:
    # S3 answers NoSuchBucket); the batch bucket is versioned, so any rewrite would show
    other = "onnxlambda-issue13-late-bucket"
    a = csv_bytes(sample_rows(manifest, 40, seed=31), manifest.feature_names)
    b = csv_bytes(sample_rows(manifest, 50, seed=32), manifest.feature_names)
    c = jsonl_bytes(sample_rows(manifest, 60, seed=33))
    event = event_for(
        s3,
        (BUCKET, "incoming/multi/a.csv", a),
        (other, "incoming/multi/b.csv", b),
        (BUCKET, "incoming/multi/c.jsonl", c),
    )
    # WHEN the built function handles it
    answer = batch.invoke(event, timeout=300)
    # THEN the invocation fails once, naming the object left to the retry...
    assert answer.get("errorType") == "BatchEventError", answer
    assert f"{other}/incoming/multi/b.csv: NoSuchBucket" in answer["errorMessage"]
    # ...after scoring the records on both sides of it
    done = versions_under(s3, "scored/multi/")
    summaries = sorted(k for k in done if k.endswith("summary.json"))
    assert [k.split("/")[2] for k in summaries] == ["a.csv", "c.jsonl"]
    # WHEN the object becomes readable and Lambda retries the same event
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="incoming/multi/b.csv", Body=b)
    retried = batch.invoke(event, timeout=300)
    # THEN only the failed record is scored; the others are skipped and nothing is rewritten
    assert "errorMessage" not in retried, retried
    assert [(r["key"], r["status"], r["rows"]["scored"]) for r in retried["results"]] == [
        ("incoming/multi/a.csv", "skipped", 40),
        ("incoming/multi/b.csv", "succeeded", 50),
        ("incoming/multi/c.jsonl", "skipped", 60),
    ]
    assert versions_under(s3, "scored/multi/") == done
    assert (
        json.loads(s3.get_object(Bucket=other, Key=retried["results"][1]["summary"])["Body"].read())["status"]
        == "succeeded"
    )


def test_an_object_deleted_before_scoring_is_reported_not_retried(s3: Any, batch: EmulatedFunction) -> None:
    # GIVEN an event for an object version deleted before the function ran
    event = put_event(s3, "incoming/vanished.csv", b"island\n")
    version = event["Records"][0]["s3"]["object"]["versionId"]
    s3.delete_object(Bucket=BUCKET, Key="incoming/vanished.csv", VersionId=version)
    # WHEN handled THEN a failed summary says so, and the invocation succeeds (no retry)
    result = invoke(batch, event)
    assert (result["status"], result["error"]["code"]) == ("failed", "not_found")
    assert listing(s3, "scored/vanished.csv/") == [result["summary"]]


# -- reliability: timeouts (soft and hard), many files at once, redaction -------------------------

BIG_ROWS = 1_200_000  # ~47 MB of CSV: at the best end-to-end rate seen here (~480k rows/s), > 2.5 s


@pytest.fixture(scope="module")
def big_csv(manifest: Manifest) -> bytes:
    return b"".join(csv_stream(manifest, BIG_ROWS, seed=77))


def open_uploads(s3: Any, prefix: str) -> list[str]:
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    return [u["Key"] for u in uploads]


def warm(fn: EmulatedFunction) -> None:
    """A first (refused, instant) event, so the model loads before the timed invocation."""
    assert invoke(fn, load_event("s3_put_output_key"))["status"] == "refused"


def test_a_time_budget_running_out_mid_file_leaves_no_scored_file(
    s3: Any, batch_function: BuiltFunction, moto_endpoint: str, big_csv: bytes
) -> None:
    # GIVEN a 3 s timeout with a 2 s margin: about 1 s of scoring for a file that needs several
    env = emulator_env(moto_endpoint, AWS_LAMBDA_FUNCTION_TIMEOUT="3", ONNXLAMBDA_BATCH_TIME_MARGIN_MS="2000")
    event = put_event(s3, "incoming/timeout/soft.csv", big_csv)
    with EmulatedFunction(batch_function, extra_env=env) as short:
        warm(short)
        # WHEN the big file arrives
        result = invoke(short, event)
    # THEN the function stopped between chunks, part-way, and said so in a failed summary
    assert result["status"] == "failed"
    assert result["error"]["code"] == "time_budget_exceeded"
    summary = summary_of(s3, result)
    assert 0 < summary["rows"]["read"] < BIG_ROWS
    print(f"time budget spent after {summary['rows']['read']} of {BIG_ROWS} rows")
    assert summary["output"]["scored"] is None
    # AND only the summary exists: no scored or errors file, no upload left open
    assert listing(s3, summary["output"]["prefix"]) == [result["summary"]]
    assert open_uploads(s3, summary["output"]["prefix"]) == []


def test_a_hard_timeout_mid_file_presents_nothing_and_the_retry_scores_it_all(
    s3: Any, batch_function: BuiltFunction, batch: EmulatedFunction, moto_endpoint: str, big_csv: bytes
) -> None:
    # GIVEN no safety margin and a 1 s timeout: the emulator kills the runtime mid-file
    env = emulator_env(moto_endpoint, AWS_LAMBDA_FUNCTION_TIMEOUT="1", ONNXLAMBDA_BATCH_TIME_MARGIN_MS="0")
    event = put_event(s3, "incoming/timeout/hard.csv", big_csv)
    with EmulatedFunction(batch_function, extra_env=env) as doomed:
        warm(doomed)
        answer = doomed.invoke_raw(json.dumps(event).encode(), timeout=120).decode()
        killed = "\n".join(doomed.log)
    # THEN the invocation failed as a timeout (an error, so Lambda retries it), and the code
    # never got to write anything: no scored file, no errors file, no summary for the input
    assert answer.startswith("Task timed out after 1.00 seconds"), answer
    assert "Reset initiated: Timeout" in killed or "timed out" in killed.lower(), killed[-2000:]
    prefix = "scored/timeout/hard.csv/"
    assert listing(s3, prefix) == []
    # (a killed run cannot abort its multipart upload: it stays invisible, the lifecycle rule
    # removes it after a day)
    interrupted = open_uploads(s3, prefix)
    # WHEN Lambda retries the same event in a fresh environment
    result = invoke(batch, event)
    # THEN the whole file is scored, and the three objects are the complete ones
    assert result["status"] == "succeeded"
    assert result["rows"] == {"read": BIG_ROWS, "scored": BIG_ROWS, "rejected": 0}
    summary = summary_of(s3, result)
    assert len(listing(s3, prefix)) == 3
    assert get(s3, summary["output"]["scored"]).count(b"\n") == BIG_ROWS + 1
    print(f"uploads left open by the killed run (invisible): {len(interrupted)}")


def test_many_files_at_once_every_row_accounted_for(
    s3: Any, batch_function: BuiltFunction, moto_endpoint: str, manifest: Manifest, record_property: Any
) -> None:
    # GIVEN 32 files (CSV and JSON Lines, 300-3,000 rows, ~1% bad rows at known positions)
    # uploaded at once, and two emulated execution environments
    # WHEN one put event per file is sent to them
    result = batchload.run(
        batch_function,
        moto_endpoint,
        s3,
        manifest,
        files=32,
        min_rows=300,
        max_rows=3_000,
        workers=2,
        prefix="incoming/load-short/",
    )
    print(result.line())
    record_property("load_batch", result.line())
    # THEN every file succeeded and every row is in exactly one output, the bad ones in errors
    assert result.failed_files == 0
    assert result.rows_in == result.scored + result.rejected
    assert result.rejected == sum(max(1, o.rows // 100) for o in result.outcomes)  # as planted
    assert (result.lost, result.duplicated, result.wrong_rejections) == (0, 0, 0)
    assert result.summary_mismatches == 0
    assert result.ok


def test_redacted_fields_never_reach_the_errors_file_or_the_logs(
    s3: Any, batch_function: BuiltFunction, moto_endpoint: str, manifest: Manifest
) -> None:
    # GIVEN ONNXLAMBDA_REDACT_FIELDS=island and rows whose island is a secret, in CSV and JSON Lines
    secret = "Atlantis-9917-SECRET"
    rows: list[dict[str, Any]] = sample_rows(manifest, 20, seed=5)
    for i in (3, 11):
        rows[i]["island"] = secret
    lines = jsonl_bytes(rows) + f'{{"island": "{secret}", \n'.encode()
    env = emulator_env(moto_endpoint, ONNXLAMBDA_REDACT_FIELDS="island")
    with EmulatedFunction(batch_function, extra_env=env) as redacting:
        results = [
            invoke(
                redacting, put_event(s3, "incoming/redact/r.csv", csv_bytes(rows, manifest.feature_names))
            ),
            invoke(redacting, put_event(s3, "incoming/redact/r.jsonl", lines)),
        ]
        log = "\n".join(redacting.log)
    # THEN the bad rows are rejected with their codes, and the secret is nowhere
    assert [r["rows"]["rejected"] for r in results] == [2, 3]
    for result in results:
        summary = summary_of(s3, result)
        errors = get(s3, summary["output"]["errors"]).decode()
        assert "unknown_category" in errors
        assert secret not in errors
        assert secret not in json.dumps(summary)
    assert secret not in log
    assert "batch object done" in log  # the function did log
