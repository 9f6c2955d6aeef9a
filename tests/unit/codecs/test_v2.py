"""Open Inference Protocol (KServe V2): the routes through the handler, and the decoder in the core."""

from __future__ import annotations

import base64
import copy
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api import app
from functions.api import v2 as v2_routes
from onnxlambda.codecs.v2 import V2Model
from onnxlambda.contract.errors import ServingError, not_ready
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service, get_service
from onnxlambda.settings import Settings
from tests.conftest import FakeLambdaContext, load_event

PENGUINS_OUTPUTS = ["label", "probabilities"]


def call(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def v2_event(method: str, path: str, body: object = None, **params: str) -> dict[str, Any]:
    """An HTTP API event for a V2 route, shaped like events/v2_*.json."""
    event = load_event("v2_infer" if method == "POST" else "v2_model_metadata")
    route = "/v2/models/{model_name}"
    if "model_version" in params:
        route += "/versions/{model_version}"
    route += path
    concrete = route.format(**params)
    event["rawPath"] = event["requestContext"]["http"]["path"] = concrete
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["pathParameters"] = params
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def golden_request() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("v2_infer")["body"])
    return body


def infer(body: object, context: FakeLambdaContext, **params: str) -> tuple[int, dict[str, Any]]:
    return call(v2_event("POST", "/infer", body, **({"model_name": "penguins"} | params)), context)


# -- routes --------------------------------------------------------------------------------


def test_server_routes(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the server-level routes WHEN called THEN metadata, liveness and readiness answer 200
    routes: list[tuple[str, dict[str, Any]]] = [
        ("/v2", {"name": "onnxlambda", "extensions": []}),
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
    ]
    for path, expected in routes:
        event = load_event("v2_model_metadata")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {path}"
        event.pop("pathParameters")
        status, body = call(event, lambda_context)
        assert status == 200
        assert body.items() >= expected.items()


def test_model_metadata_comes_from_the_session_and_manifest(lambda_context: FakeLambdaContext) -> None:
    # WHEN the model metadata is asked for, with and without the version
    status, body = call(load_event("v2_model_metadata"), lambda_context)
    versioned = call(v2_event("GET", "", model_name="penguins", model_version="1.0.0"), lambda_context)
    # THEN one input per feature with the ONNX input's datatype, and the model's outputs
    assert status == 200
    assert versioned == (200, body)
    manifest = get_service().manifest
    assert [i["name"] for i in body["inputs"]] == manifest.feature_names
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == {
        "island": "BYTES",
        "bill_length_mm": "FP32",
        "bill_depth_mm": "FP32",
        "flipper_length_mm": "FP32",
        "body_mass_g": "FP32",
        "sex": "BYTES",
    }
    assert all(i["shape"] == [-1, 1] for i in body["inputs"])
    assert body["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert (body["name"], body["versions"], body["platform"]) == ("penguins", ["1.0.0"], "onnxruntime_onnx")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("", {"model_name": "nope"}),
        ("/ready", {"model_name": "nope"}),
        ("", {"model_name": "penguins", "model_version": "2.0.0"}),
        ("/ready", {"model_name": "penguins", "model_version": "0.9.0"}),
    ],
)
def test_unknown_model_or_version_is_404(
    lambda_context: FakeLambdaContext, path: str, params: dict[str, str]
) -> None:
    status, body = call(v2_event("GET", path, **params), lambda_context)
    assert status == 404
    assert list(body) == ["error"]
    assert "unknown model" in body["error"]


def test_model_ready(lambda_context: FakeLambdaContext) -> None:
    assert call(v2_event("GET", "/ready", model_name="penguins"), lambda_context) == (
        200,
        {"name": "penguins", "ready": True},
    )


def test_infer_matches_predict_and_echoes_the_id(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the golden rows as V2 tensors (events/v2_infer.json) and as /predict records
    request = golden_request()
    rows = [{t["name"]: t["data"][i] for t in request["inputs"]} for i in range(2)]
    predict = get_service().predict({"instances": rows})["predictions"]
    # WHEN inferred
    status, body = call(load_event("v2_infer"), lambda_context)
    # THEN the same labels and probabilities as /predict, all outputs, and the id echoed
    assert status == 200
    assert (body["model_name"], body["model_version"], body["id"]) == ("penguins", "1.0.0", "golden-1")
    assert body["parameters"] == {
        "model_sha256": get_service().manifest.sha256,
        "function_version": "local",
        "inference_id_prefix": "v2_infer",  # the API Gateway request id, as on /predict
    }
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == PENGUINS_OUTPUTS
    assert outputs["label"] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "data": [p["label"] for p in predict],
    }
    assert outputs["probabilities"]["shape"] == [2, 3]
    expected = [p["probabilities"][k] for p in predict for k in ("Adelie", "Chinstrap", "Gentoo")]
    assert outputs["probabilities"]["data"] == pytest.approx(expected, abs=1e-6)


def test_requested_outputs_only_and_versioned_path(lambda_context: FakeLambdaContext) -> None:
    request = golden_request() | {"outputs": [{"name": "probabilities"}]}
    del request["id"]
    status, body = infer(request, lambda_context, model_version="1.0.0")
    assert status == 200
    assert [o["name"] for o in body["outputs"]] == ["probabilities"]
    assert "id" not in body


def test_an_empty_outputs_list_means_every_output(lambda_context: FakeLambdaContext) -> None:
    # GIVEN "outputs": [] (hypothesis found it answered no outputs, and the handler then failed)
    status, body = infer(golden_request() | {"outputs": []}, lambda_context)
    assert status == 200
    assert [o["name"] for o in body["outputs"]] == PENGUINS_OUTPUTS


def test_nested_data_and_flat_shapes_are_accepted(lambda_context: FakeLambdaContext) -> None:
    # GIVEN data nested row-major ([[v], [v]]) for one input and shape [N] for another
    request = golden_request()
    request["inputs"][0]["data"] = [[v] for v in request["inputs"][0]["data"]]
    request["inputs"][1]["shape"] = [2]
    # THEN the request means the same rows
    assert (
        infer(request, lambda_context)[1]["outputs"]
        == call(load_event("v2_infer"), lambda_context)[1]["outputs"]
    )


def binary_request(request: dict[str, Any]) -> tuple[bytes, int]:
    """The binary tensor data extension, as tritonclient sends it by default."""
    header = copy.deepcopy(request)
    chunks = []
    for tensor in header["inputs"]:
        data = tensor.pop("data")
        if tensor["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in data)
        else:
            raw = np.array(data, dtype="<f4").tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    text = json.dumps(header).encode()
    return text + b"".join(chunks), len(text)


def test_binary_tensor_data_means_the_same_as_json(lambda_context: FakeLambdaContext) -> None:
    # GIVEN the golden request in binary form, base64-encoded by API Gateway
    body, header_length = binary_request(golden_request())
    event = load_event("v2_infer")
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    event["headers"]["inference-header-content-length"] = str(header_length)
    event["headers"]["content-type"] = "application/octet-stream"
    # WHEN inferred THEN the answer is the JSON request's
    status, answer = call(event, lambda_context)
    assert status == 200, answer
    assert answer == call(load_event("v2_infer"), lambda_context)[1]


def test_float32_values_at_a_range_bound_are_inside_it(lambda_context: FakeLambdaContext) -> None:
    # GIVEN bill_depth_mm at its maximum 25.7 as a float32 client holds it (25.700000762939453),
    # which the tritonclient test found refused as "outside [8.8, 25.7]"
    request = golden_request()
    request["inputs"][2]["data"] = [float(np.float32(25.7)), 18.5]
    assert request["inputs"][2]["data"][0] > 25.7
    # THEN it is the float32 25.7, inside the range; a float32 just above the bound is not
    assert infer(request, lambda_context)[0] == 200
    request["inputs"][2]["data"] = [float(np.nextafter(np.float32(25.7), np.float32(30))), 18.5]
    status, body = infer(request, lambda_context)
    assert status == 422
    assert "row 0 bill_depth_mm" in body["error"]


def test_json_null_is_missing_where_the_manifest_allows_it(lambda_context: FakeLambdaContext) -> None:
    request = golden_request()
    request["inputs"][5]["data"] = [None, "female"]  # sex is nullable
    assert infer(request, lambda_context)[0] == 200
    request["inputs"][0]["data"] = [None, "Dream"]  # island is not
    status, body = infer(request, lambda_context)
    assert status == 422
    assert "row 0 island: 'island' cannot be null" in body["error"]


def _mutate(request: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    request = copy.deepcopy(request)
    if path == "":
        return value  # type: ignore[return-value]
    target: Any = request
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return request


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "status", "fragment"),
    [
        ("", [], 400, "must be a JSON object"),
        ("inputs", [], 400, "'inputs' must be a non-empty array"),
        ("inputs", _DELETE, 400, "'inputs' must be a non-empty array"),
        ("inputs.0", "island", 400, "each input must be an object"),
        ("inputs.0.name", "colour", 400, "unexpected inference input 'colour'"),
        ("inputs.1.name", "island", 400, "input 'island' is given more than once"),
        ("inputs.1.datatype", "FP64", 400, "data-type is 'FP64', but model 'penguins' expects 'FP32'"),
        ("inputs.1.datatype", "FLOAT", 400, "datatype must be one of"),
        ("inputs.1.shape", [2, 2], 400, "expected [N, 1] or [N], got [2, 2]"),
        ("inputs.1.shape", [2, 1, 1], 400, "expected [N, 1] or [N]"),
        ("inputs.1.shape", [-2, 1], 400, "expected [N, 1] or [N]"),
        ("inputs.1.shape", [True, 1], 400, "expected [N, 1] or [N]"),
        ("inputs.1.shape", [3, 1], 400, "has 3 rows but earlier inputs have 2"),
        ("inputs.1.data", [37.7], 400, "has 1 elements but its shape [2, 1] needs 2"),
        ("inputs.1.data", [[[37.7]], [42.2]], 400, "nested deeper"),
        ("inputs.1.data", 37.7, 400, "'data' must be an array"),
        ("inputs.1.data", _DELETE, 400, "has no 'data'"),
        ("inputs.1.parameters", {"binary_data_size": 8}, 400, "binary_data_size does not fit"),
        ("inputs.5", _DELETE, 400, "missing: sex"),
        ("outputs", [{"name": "logits"}], 400, "unexpected inference output 'logits'"),
        ("outputs", {"name": "label"}, 400, "'outputs' must be an array"),
        ("id", 7, 400, "'id' must be a string"),
        ("inputs.0.data", ["Atlantis", "Dream"], 422, "row 0 island: 'Atlantis' is not one of"),
        ("inputs.1.data", ["37.7", 42.2], 422, "row 0 bill_length_mm: expected a number, got string"),
        ("inputs.1.data", [True, 42.2], 422, "expected a number, got boolean"),
        ("inputs.1.data", [1000.0, 42.2], 422, "is outside [19, 73]"),
        ("inputs.1.data", [1e39, 42.2], 422, "outside"),
        ("inputs.1.data", [10**400, 42.2], 422, "far outside any range"),
        ("inputs.1.data", [float("inf"), 42.2], 422, "must be a finite number"),
    ],
)
def test_bad_infer_requests_get_the_protocol_error(
    lambda_context: FakeLambdaContext, path: str, value: object, status: int, fragment: str
) -> None:
    # GIVEN the golden request broken in one place
    body = _mutate(golden_request(), path, value)
    # WHEN inferred THEN the status and a {"error": "..."} body that names the problem
    got_status, got = infer(body, lambda_context)
    assert (got_status, list(got)) == (status, ["error"]), got
    assert fragment in got["error"]


def test_undecodable_bodies_are_400(lambda_context: FakeLambdaContext) -> None:
    for raw in ["", "not json", "[1, 2]", '{"inputs": ' * 5000]:
        status, body = infer(raw, lambda_context)
        assert status == 400, (raw[:20], body)
        assert list(body) == ["error"]
    event = load_event("v2_infer")
    event["headers"]["inference-header-content-length"] = "abc"
    assert call(event, lambda_context)[0] == 400
    event["headers"]["inference-header-content-length"] = str(10**9)
    assert call(event, lambda_context)[0] == 400


def test_too_many_rows_and_too_large_bodies_are_413_in_the_protocol_shape(
    lambda_context: FakeLambdaContext,
) -> None:
    rows = get_service().validator.max_rows + 1
    request = golden_request()
    request["inputs"][0]["shape"] = [rows, 1]
    status, body = infer(request, lambda_context)
    assert (status, list(body)) == (413, ["error"])
    event = load_event("v2_infer")
    event["body"] = " " * (Settings.from_env().max_body_bytes + 1)
    status, body = call(event, lambda_context)
    assert status == 413
    assert body["error"].startswith("body_too_large")


def test_model_not_loaded_is_503_and_a_bug_is_500_both_in_the_protocol_shape(
    lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_tensors: Any) -> None:
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(get_service().runtime, "run", boom)
    status, body = call(load_event("v2_infer"), lambda_context)
    assert status == 500
    assert body["error"] == "internal_error: internal error (request id v2_infer)"

    def unloaded() -> None:
        raise not_ready("model not loaded: sha256 mismatch")

    monkeypatch.setattr(v2_routes, "get_service", unloaded)
    for event in (load_event("v2_infer"), v2_event("GET", "/ready", model_name="penguins")):
        status, body = call(event, lambda_context)
        assert (status, list(body)) == (503, ["error"])
        assert body["error"].startswith("model_not_ready")


def test_a_regression_model_speaks_v2_too(diabetes_dir: Path) -> None:
    # GIVEN the diabetes regressor and its golden set
    service = Service(ModelRuntime.load(diabetes_dir), Settings.from_env())
    model = V2Model(service)
    golden = json.loads((diabetes_dir / "golden.json").read_text())["cases"][:3]
    inputs = [
        {"name": f, "datatype": "FP32", "shape": [3, 1], "data": [c["instance"][f] for c in golden]}
        for f in service.manifest.feature_names
    ]
    # WHEN inferred through the protocol
    answer = model.infer(json.dumps({"inputs": inputs}).encode(), None)
    # THEN one FP32 output of shape [N, 1] with the golden values
    [output] = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("variable", "FP32", [3, 1])
    expected = [c["expected"]["disease_progression"] for c in golden]
    assert output["data"] == pytest.approx(expected, abs=1e-2)
    assert model.metadata()["outputs"] == [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}]


# -- property-based: the decoder never fails other than with a protocol error -----------------

# Edges found by hand (an int beyond float64 was a 500) are sampled on purpose.
_edges = st.sampled_from([10**400, -(10**400), 1e39, float("inf"), float("nan"), -0.0, 2**63, ""])
_json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | _edges
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def infer_requests(draw: st.DrawFn) -> object:
    """The golden request broken in one way: one value, one part of one tensor, the envelope."""
    request = golden_request()
    kind = draw(st.sampled_from(["value", "tensor", "envelope", "junk"]))
    if kind == "value":  # structure intact: reaches the value decoding and the Validator
        tensor = draw(st.sampled_from(request["inputs"]))
        tensor["data"][draw(st.integers(0, 1))] = draw(_json_scalar)
    elif kind == "tensor":
        tensor = draw(st.sampled_from(request["inputs"]))
        tensor[draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]))] = draw(
            _json
            | st.sampled_from(["island", "sex", "FP32", "BYTES", "INT64", "BOOL"])
            | st.lists(st.integers(-2, 1001), max_size=3)
            | st.lists(_json_scalar, min_size=2, max_size=2)
            | st.fixed_dictionaries({"binary_data_size": st.integers(-1, 64)})
        )
    elif kind == "envelope":
        request["inputs"] = draw(st.permutations(request["inputs"]))[: draw(st.integers(0, 7))]
        if draw(st.booleans()):
            request["outputs"] = draw(_json | st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)})))
        if draw(st.booleans()):
            request["id"] = draw(_json)
    else:
        return draw(_json)
    return request


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=infer_requests(), binary=st.binary(max_size=64), header=st.none() | st.integers(-4, 4096))
def test_the_decoder_answers_anything_with_success_or_a_protocol_error(
    request: object, binary: bytes, header: int | None
) -> None:
    model = V2Model(get_service())
    text = json.dumps(request).encode()
    raw, header_length = (text, None) if header is None else (text + binary, str(len(text) + header % 8))
    refused: ServingError | None = None
    try:
        answer = model.infer(raw, header_length)
    except ServingError as err:
        refused = err
    if refused is not None:
        assert refused.status in {400, 413, 422}
        assert refused.message
    else:
        assert answer["model_name"] == "penguins"
        assert answer["outputs"]


@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_parameters_that_are_not_an_object_are_refused(lambda_context: FakeLambdaContext, where: str) -> None:
    # GIVEN the golden request with `parameters` as a list (found by schemathesis --checks all)
    body = golden_request()
    body["outputs"] = [{"name": "label"}]
    target = {"request": body, "input": body["inputs"][0], "output": body["outputs"][0]}[where]
    target["parameters"] = [None, None]
    # WHEN inferred THEN 400 in the protocol's shape, naming the field, never silently ignored
    status, answer = infer(body, lambda_context)
    assert status == 400
    assert "'parameters' must be an object" in answer["error"]


def test_integral_float_dimensions_are_accepted_and_null_outputs_refused(
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN shapes written as 2.0 (JSON Schema's "integer" admits them; schemathesis sends them)
    body = golden_request()
    for tensor in body["inputs"]:
        tensor["shape"] = [float(d) for d in tensor["shape"]]
    status, _ = infer(body, lambda_context)
    assert status == 200
    # AND `outputs: null`, which is not the documented array, is refused rather than ignored
    body["outputs"] = None
    status, answer = infer(body, lambda_context)
    assert status == 400
    assert "'outputs' must be an array" in answer["error"]
