"""The API function's monitoring: per-request EMF metrics, sampled data capture, POST /feedback."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from functions.api import app
from functions.api.observe import observer
from onnxlambda.contract.manifest import load_manifest
from onnxlambda.monitoring import metrics as names
from onnxlambda.monitoring.capture import Capturer, CaptureSettings
from onnxlambda.serving.dataplane import Decoded, Inference
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from tests.conftest import MODELS, FakeLambdaContext, golden_rows, load_event


def answered(rows: list[dict[str, Any]], request_id: str = "r") -> tuple[Inference, Decoded]:
    """Rows answered by the penguins model through the data plane (no row limit)."""
    settings = Settings(MODELS / "penguins", 100_000, 1 << 20, 100, 1)
    request = Decoded(protocol="predict", rows=rows)
    service = Service(ModelRuntime.load(MODELS / "penguins"), settings)
    return service.dataplane.infer(request, request_id=request_id), request


def stdout_json(out: str) -> list[dict[str, Any]]:
    lines = []
    for line in out.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return [x for x in lines if isinstance(x, dict)]


def emf(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The EMF blob with the application metrics (not the single ColdStart one)."""
    blobs = [x for x in lines if "_aws" in x and "Requests" in x]
    assert len(blobs) == 1, lines
    blob = dict(blobs[0])
    for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
        values = blob[metric["Name"]]
        blob[metric["Name"]] = values[0] if isinstance(values, list) and len(values) == 1 else values
    return blob


@pytest.fixture
def capture_all() -> Iterator[None]:
    previous = observer.capture_settings
    observer.capture_settings = CaptureSettings(sample_rate=1.0, redact=frozenset({"body_mass_g"}))
    observer._capturer = None
    yield
    observer.capture_settings = previous
    observer._capturer = None


def predict_event(rows: list[dict[str, Any]]) -> dict[str, Any]:
    event = load_event("api_predict_one")
    event["body"] = json.dumps({"instances": rows})
    return event


def test_a_prediction_emits_service_and_input_health_metrics(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three rows, two of them with a missing sex and one with a missing bill length
    rows = golden_rows(MODELS / "penguins")[:3]
    rows[0] = {**rows[0], "sex": None}
    rows[1] = {**rows[1], "sex": None, "bill_length_mm": None}
    # WHEN they are scored
    response = app.lambda_handler(predict_event(rows), lambda_context)
    assert response["statusCode"] == 200
    blob = emf(stdout_json(capsys.readouterr().out))
    # THEN one EMF line carries volume, latency, missing values per nullable feature and the score
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert blob["service"] == "onnxlambda"
    assert blob["model_version"] == "1.0.0"  # metadata, not a dimension
    assert (blob["Requests"], blob["Predictions"]) == (1.0, 3.0)
    assert blob["Missing_sex"] == 2.0
    assert blob["Missing_bill_length_mm"] == 1.0
    assert "Missing_body_mass_g" not in blob  # zero counts are not sent
    assert blob["MissingValues"] == 3.0
    assert "Missing_island" not in blob  # not nullable: a null is refused, never scored
    assert 1 / 3 <= blob["MeanScore"] <= 1.0
    assert blob["InferenceTime"] > 0
    assert blob["HandlerTime"] >= blob["InferenceTime"]


def test_a_refusal_counts_its_code_and_the_reasons_of_its_values(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a request with an out-of-range value and an unknown category in two rows
    rows = golden_rows(MODELS / "penguins")[:2]
    rows[0] = {**rows[0], "body_mass_g": 250000}
    rows[1] = {**rows[1], "island": "Atlantis"}
    response = app.lambda_handler(predict_event(rows), lambda_context)
    assert response["statusCode"] == 422
    blob = emf(stdout_json(capsys.readouterr().out))
    # THEN the request-level code and each value-level reason are counted
    assert blob["Rejected_validation_failed"] == 1.0
    assert blob["InvalidValues_out_of_range"] == 1.0
    assert blob["InvalidValues_unknown_category"] == 1.0
    assert "Predictions" not in blob


@pytest.mark.usefixtures("capture_all")
def test_a_direct_invoke_of_a_version_is_not_counted_as_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the pre-traffic hook's call: the new version by its number, not through the `live` alias
    arn = "arn:aws:lambda:us-east-1:123456789012:function:onnxlambda-prod-api"
    hook_call = FakeLambdaContext(invoked_function_arn=f"{arn}:7")
    bad = load_event("api_out_of_range")
    # WHEN it sends the golden set and a request the model refuses
    assert app.lambda_handler(load_event("api_predict_batch"), hook_call)["statusCode"] == 200
    assert app.lambda_handler(bad, hook_call)["statusCode"] == 422
    lines = stdout_json(capsys.readouterr().out)
    # THEN no request, prediction or refusal is counted and no row is captured: the stack's
    # alarms and drift windows see callers only
    assert not [
        x
        for x in lines
        if "_aws" in x and ({"Requests", "Predictions"} & set(x) or "Rejected_validation_failed" in x)
    ]
    assert not [x for x in lines if x.get("record_type") == "inference"]
    # AND the same request through the alias is counted again
    assert app.lambda_handler(bad, FakeLambdaContext(invoked_function_arn=f"{arn}:live"))["statusCode"] == 422
    assert emf(stdout_json(capsys.readouterr().out))["Rejected_validation_failed"] == 1.0


@pytest.mark.usefixtures("capture_all")
def test_sampled_rows_are_captured_as_single_json_lines(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN capture of every row, with body_mass_g redacted
    response = app.lambda_handler(load_event("api_predict_batch"), lambda_context)
    assert response["statusCode"] == 200
    predictions = json.loads(response["body"])["predictions"]
    lines = stdout_json(capsys.readouterr().out)
    captured = [x for x in lines if x.get("record_type") == "inference"]
    # THEN each row is one line with its inference id, model identity, features and prediction
    assert [c["inference_id"] for c in captured] == [p["inference_id"] for p in predictions]
    first = captured[0]
    assert first["model_version"] == "1.0.0"
    assert first["prediction"]["label"] == predictions[0]["label"]
    assert "inference_id" not in first["prediction"]
    assert set(first["features"]) == {"island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex"}
    assert first["redacted"] == ["body_mass_g"]
    assert emf(lines)["CapturedRows"] == len(predictions)


def test_fields_in_redact_fields_never_appear_in_captured_records(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the deployment's sensitive fields (ONNXLAMBDA_REDACT_FIELDS), a capture-only exclusion, and
    # capture of every row, configured through the environment as the template sets it
    monkeypatch.setenv("ONNXLAMBDA_REDACT_FIELDS", "island,body_mass_g")
    monkeypatch.setenv("ONNXLAMBDA_CAPTURE_REDACT_FIELDS", "sex")
    monkeypatch.setenv("ONNXLAMBDA_CAPTURE_SAMPLE_RATE", "1")
    settings = CaptureSettings.from_env()
    assert settings.redact == {"island", "body_mass_g", "sex"}  # the union of both lists
    monkeypatch.setattr(observer, "capture_settings", settings)
    monkeypatch.setattr(observer, "_capturer", None)
    # AND rows whose redacted values are easy to spot
    rows = [dict(r, body_mass_g=4321.987) for r in golden_rows(MODELS / "penguins")[:4]]
    # WHEN the API scores them
    response = app.lambda_handler(predict_event(rows), lambda_context)
    assert response["statusCode"] == 200
    out = capsys.readouterr().out
    captured = [x for x in stdout_json(out) if x.get("record_type") == "inference"]
    # THEN every row is captured without the redacted fields, which are named, not valued
    assert len(captured) == len(rows)
    for record in captured:
        assert set(record["features"]) == {"bill_length_mm", "bill_depth_mm", "flipper_length_mm"}
        assert record["redacted"] == ["body_mass_g", "island", "sex"]
    capture_lines = [line for line in out.splitlines() if '"record_type":"inference"' in line]
    assert len(capture_lines) == len(rows)
    assert not any("4321.987" in line or 'island":' in line for line in capture_lines)
    # AND ONNXLAMBDA_REDACT_FIELDS alone is enough: nothing repeated in ONNXLAMBDA_CAPTURE_REDACT_FIELDS
    monkeypatch.delenv("ONNXLAMBDA_CAPTURE_REDACT_FIELDS")
    assert CaptureSettings.from_env().redact == {"island", "body_mass_g"}


@pytest.mark.usefixtures("capture_all")
def test_v2_traffic_is_measured_and_captured_like_predict(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the golden V2 request, one row with a missing sex, and capture of every row
    event = load_event("v2_infer")
    body = json.loads(event["body"])
    sex = next(i for i in body["inputs"] if i["name"] == "sex")
    sex["data"][0] = None
    event["body"] = json.dumps(body)
    # WHEN it is answered through the Open Inference Protocol
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    lines = stdout_json(capsys.readouterr().out)
    blob = emf(lines)
    # THEN the same service and input-health metrics as /predict are emitted
    rows = answer["outputs"][0]["shape"][0]
    assert (blob["Predictions"], blob["Missing_sex"], blob["MissingValues"]) == (float(rows), 1.0, 1.0)
    assert 0 < blob["MeanScore"] <= 1
    # AND every row is captured with an inference id /feedback can join on, marked as V2
    captured = [x for x in lines if x.get("record_type") == "inference"]
    prefix = answer["parameters"]["inference_id_prefix"]
    assert [c["inference_id"] for c in captured] == [f"{prefix}-{i}" for i in range(rows)]
    assert {c["protocol"] for c in captured} == {"v2"}
    assert captured[0]["features"]["sex"] is None
    labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
    assert [c["prediction"]["label"] for c in captured] == labels


def test_a_refused_v2_request_counts_like_a_refused_predict(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a V2 request with an unknown category
    event = load_event("v2_infer")
    body = json.loads(event["body"])
    next(i for i in body["inputs"] if i["name"] == "island")["data"][0] = "Atlantis"
    event["body"] = json.dumps(body)
    response = app.lambda_handler(event, lambda_context)
    # THEN 422 in the protocol's shape, counted under the same code and reason as /predict
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"].startswith("validation_failed")
    blob = emf(stdout_json(capsys.readouterr().out))
    assert (blob["Rejected_validation_failed"], blob["InvalidValues_unknown_category"]) == (1.0, 1.0)


def test_sampling_keeps_about_the_configured_share() -> None:
    # GIVEN a 10% sample rate and a seeded generator
    manifest = load_manifest(MODELS / "penguins")
    written: list[str] = []
    capturer = Capturer(
        manifest, CaptureSettings(sample_rate=0.1), write=written.append, rng=random.Random(1)
    )
    rows = golden_rows(MODELS / "penguins")
    inference, request = answered(rows * 100)
    total = sum(capturer.capture(inference, request) for _ in range(10))
    # THEN about a tenth of the rows are captured (binomial: 10% +- 4 sd)
    n = len(rows) * 100 * 10
    assert abs(total - 0.1 * n) < 4 * (n * 0.1 * 0.9) ** 0.5
    assert sum(line.count("\n") for line in written) == total
    # AND a zero rate writes nothing at all
    silent = Capturer(manifest, CaptureSettings(sample_rate=0.0), write=written.append)
    assert silent.capture(inference, request) == 0


def test_feedback_is_accepted_and_written_on_the_capture_path(
    lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN feedback naming a label of the model
    response = app.lambda_handler(load_event("api_feedback"), lambda_context)
    # THEN 202, one feedback record line, and a Feedback count
    assert response["statusCode"] == 202
    assert json.loads(response["body"]) == {"status": "accepted", "inference_id": "api_predict_one-0"}
    lines = stdout_json(capsys.readouterr().out)
    [record] = [x for x in lines if x.get("record_type") == "feedback"]
    assert (record["inference_id"], record["actual"], record["model_version"]) == (
        "api_predict_one-0",
        "Adelie",
        "1.0.0",
    )
    assert emf(lines)["Feedback"] == 1.0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"inference_id": "x-0", "actual": "Dodo"}, 422, "invalid_feedback"),
        ({"inference_id": "x-0", "actual": 3}, 422, "invalid_feedback"),
        ({"inference_id": "x-0", "actual": None}, 422, "invalid_feedback"),
        ({"actual": "Adelie"}, 400, "malformed_request"),
        ({"inference_id": "bad id with spaces", "actual": "Adelie"}, 400, "malformed_request"),
    ],
)
def test_bad_feedback_is_refused(
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    event = load_event("api_feedback")
    event["body"] = json.dumps(body)
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == status
    assert json.loads(response["body"])["error"]["code"] == code
    # AND nothing reaches the capture path, and the refusal is counted under its own code
    lines = stdout_json(capsys.readouterr().out)
    assert not [x for x in lines if x.get("record_type") == "feedback"]
    assert emf(lines)[f"Rejected_{code}"] == 1.0
    if code == "invalid_feedback":
        assert not [k for k in emf(lines) if k.startswith("InvalidValues_")]  # not input health


def test_metric_names_are_bounded_by_the_manifest() -> None:
    # GIVEN both example models THEN the API metric count depends only on nullable features
    penguins, diabetes = load_manifest(MODELS / "penguins"), load_manifest(MODELS / "diabetes")
    assert names.nullable_features(diabetes) == []
    extra = len(names.api_metric_names(penguins)) - len(names.api_metric_names(diabetes))
    assert extra == len(names.nullable_features(penguins)) == 5
    assert all(len(n) <= 255 for n in names.monitor_metric_names(penguins))


def test_a_row_that_cannot_be_written_is_skipped_not_failed() -> None:
    # GIVEN a row holding a value JSON cannot carry (NaN), next to a normal one
    manifest = load_manifest(MODELS / "penguins")
    written: list[str] = []
    capturer = Capturer(manifest, CaptureSettings(sample_rate=1.0), write=written.append)
    rows = golden_rows(MODELS / "penguins")[:2]
    inference, _ = answered(rows)
    request = Decoded(protocol="predict", rows=[{**rows[0], "bill_length_mm": float("nan")}, rows[1]])
    # WHEN captured THEN only the other row is written, and nothing raises
    assert capturer.capture(inference, request) == 1
    [line] = "".join(written).splitlines()
    assert json.loads(line)["inference_id"] == "r-1"
