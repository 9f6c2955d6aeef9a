"""The contract over plain HTTP: the local front (devtools.serve) over the `sam build` output under
the Lambda Runtime Interface Emulator. A standard V2 client (tritonclient) unmodified, the served
OpenAPI document, and schemathesis fuzzing every documented route from that document."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from tritonclient.utils import InferenceServerException

from devtools.serve import serving
from tests.conftest import MODELS

PENGUINS = MODELS / "penguins"
# Bounded so the whole file stays well under a minute on the shared 2-core machine.
# Per operation and mode; operations without inputs stop after their one distinct case.
FUZZ_EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 25}


@pytest.fixture(scope="module")
def base_url(build_dir: Path) -> Iterator[str]:
    with serving(build_dir) as (server, _front):
        yield f"http://127.0.0.1:{server.server_address[1]}"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def golden_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((PENGUINS / "golden.json").read_text())["cases"]
    return cases


def test_the_served_document_is_the_committed_one(base_url: str) -> None:
    # WHEN the contract is fetched from the running function
    status, body = get(f"{base_url}/openapi.json")
    # THEN it is byte for byte the committed, reviewed document of the served model
    assert status == 200
    assert body == (PENGUINS / "openapi.json").read_bytes()


UNSERVED = [("TRACE", "/predict", 405), ("BREW", "/health", 405), ("GET", "/nowhere", 404)]


@pytest.mark.parametrize(("method", "path", "status"), UNSERVED)
def test_an_unserved_method_or_path_is_the_functions_json_405_or_404(
    base_url: str, method: str, path: str, status: int
) -> None:
    # GIVEN a method or path the handler does not serve (TRACE is what schemathesis --checks all
    # sends); API Gateway's one greedy route hands it to the function, as the local front does
    answer, body = call(base_url, method, path)
    # THEN 405 where the path is served with another method, else 404, in the error body of every
    # other refusal (code, message, request id), never an HTML page
    assert answer == status
    assert body["error"]["code"] == ("method_not_allowed" if status == 405 else "not_found")
    assert body["error"]["request_id"]


def test_a_path_outside_the_greedy_route_is_api_gateways_own_404(base_url: str) -> None:
    # GIVEN the root path, which {proxy+} does not match THEN API Gateway's JSON, not the function's
    assert call(base_url, "GET", "/") == (404, {"message": "Not Found"})


def call(base_url: str, method: str, path: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        assert response.getheader("content-type") == "application/json"
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# -- tritonclient, unmodified -----------------------------------------------------------------


def test_tritonclient_speaks_to_the_function(base_url: str) -> None:
    client = triton.InferenceServerClient(url=base_url.removeprefix("http://"), network_timeout=30)
    try:
        # GIVEN the standard V2 HTTP client pointed at the local front
        # THEN server liveness, readiness and model readiness are reported
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("penguins")
        assert client.is_model_ready("penguins", "1.0.0")
        assert not client.is_model_ready("penguins", "9.9.9")
        # AND the model metadata describes one BYTES or FP32 input per feature, shape [-1, 1]
        metadata = client.get_model_metadata("penguins")
        inputs = {i["name"]: (i["datatype"], i["shape"]) for i in metadata["inputs"]}
        assert inputs["island"] == ("BYTES", [-1, 1])
        assert inputs["bill_length_mm"] == ("FP32", [-1, 1])
        assert metadata["versions"] == ["1.0.0"]

        # WHEN the golden rows are sent as tensors, with its default binary tensor data
        # (rows with a missing value are left out: binary BYTES has no null)
        cases = [c for c in golden_cases() if None not in c["instance"].values()]
        tensors = []
        for spec in metadata["inputs"]:
            values = [[c["instance"][spec["name"]]] for c in cases]
            dtype = np.object_ if spec["datatype"] == "BYTES" else np.float32
            tensor = triton.InferInput(spec["name"], [len(cases), 1], spec["datatype"])
            tensor.set_data_from_numpy(np.array(values, dtype=dtype))
            tensors.append(tensor)
        result = client.infer(
            "penguins",
            tensors,
            outputs=[triton.InferRequestedOutput("label"), triton.InferRequestedOutput("probabilities")],
            request_id="golden-batch",
        )
        # THEN labels and probabilities match the golden set, and the id comes back
        labels = result.as_numpy("label")
        probabilities = result.as_numpy("probabilities")
        assert result.get_response()["id"] == "golden-batch"
        assert labels is not None
        assert probabilities is not None
        assert probabilities.shape == (len(cases), 3)
        for i, case in enumerate(cases):
            assert labels[i] == case["expected"]["label"]
            expected = case["expected"]["probabilities"]
            assert probabilities[i] == pytest.approx(
                [expected[k] for k in ("Adelie", "Chinstrap", "Gentoo")], abs=1e-4
            )

        # WHEN only one output is requested, in JSON this time
        island = triton.InferInput("island", [1, 1], "BYTES")
        island.set_data_from_numpy(np.array([["Biscoe"]], dtype=np.object_), binary_data=False)
        row = cases[0]["instance"]
        one = [island]
        for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
            t = triton.InferInput(name, [1, 1], "FP32")
            t.set_data_from_numpy(np.array([[row[name]]], dtype=np.float32), binary_data=False)
            one.append(t)
        sex = triton.InferInput("sex", [1, 1], "BYTES")
        sex.set_data_from_numpy(np.array([["male"]], dtype=np.object_), binary_data=False)
        one.append(sex)
        only_label = client.infer(
            "penguins", one, model_version="1.0.0", outputs=[triton.InferRequestedOutput("label")]
        )
        # THEN only that output comes back
        assert [o["name"] for o in only_label.get_response()["outputs"]] == ["label"]
        assert only_label.as_numpy("probabilities") is None

        # WHEN a value breaks the contract, or the model is unknown
        island.set_data_from_numpy(np.array([["Atlantis"]], dtype=np.object_), binary_data=False)
        with pytest.raises(InferenceServerException, match="Atlantis") as invalid:
            client.infer("penguins", one)
        with pytest.raises(InferenceServerException, match="unknown model") as unknown:
            client.get_model_metadata("no-such-model")
        # THEN the client surfaces the protocol's error message and status
        assert invalid.value.status() == "422"
        assert unknown.value.status() == "404"
    finally:
        client.close()


# -- fuzzing from the served document ---------------------------------------------------------

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(
    strategy: Any, mode: GenerationMode, examples: int, base_url: str, seen: Counter[tuple[str, str, int]]
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # hypothesis draws the same way every run (schemathesis adds its own)
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        # WHEN a schema-valid (positive) or schema-breaking (negative) request is sent
        response = case.call(base_url=base_url, timeout=30)
        seen[(mode.value, f"{case.method} {case.operation.path}", response.status_code)] += 1
        # THEN no 5xx, every status documented, and every body (errors too) matches its schema
        case.validate_response(response, checks=CHECKS)
        # AND a schema-valid /predict body is always scored: the document promises no more
        # than the Validator accepts
        if mode is GenerationMode.POSITIVE and case.operation.path == "/predict":
            assert response.status_code == 200, response.text

    send()


def test_fuzzing_every_route_finds_no_5xx_and_only_documented_errors(base_url: str) -> None:
    # GIVEN the OpenAPI document as the running function serves it
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    seen: Counter[tuple[str, str, int]] = Counter()
    started = time.monotonic()
    served = {"model_name": "penguins", "model_version": "1.0.0"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        for mode, examples in FUZZ_EXAMPLES.items():
            if mode is GenerationMode.NEGATIVE and not len(operation.body):
                continue  # a GET has nothing to break: any string is a valid path parameter
            # random path parameters (unknown models: 404) ...
            fuzz(operation.as_strategy(generation_mode=mode), mode, examples, base_url, seen)
            if names:  # ... and the served model's, so bodies reach the decoder and the Validator
                pinned = {k: v for k, v in served.items() if k in names}
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)
                fuzz(strategy, mode, examples, base_url, seen)
    elapsed = time.monotonic() - started
    total = sum(seen.values())
    statuses = Counter(status for (_m, _op, status) in seen.elements())
    print(f"\nfuzzed {total} requests in {elapsed:.1f}s; statuses {dict(sorted(statuses.items()))}")
    for key, count in sorted(seen.items()):
        print(f"  {key[0]:8} {key[1]:60} {key[2]}: {count}")
    # THEN every documented operation was exercised, and the function still serves afterwards
    assert total >= 200
    assert {op for (_m, op, _s) in seen} == {f"{o.method.upper()} {o.path}" for o in operations}
    status, body = get(f"{base_url}/v2/health/ready")
    assert (status, json.loads(body)) == (200, {"ready": True})
    request = urllib.request.Request(
        f"{base_url}/predict",
        data=json.dumps({"instances": [golden_cases()[0]["instance"]]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert (
            json.loads(response.read())["predictions"][0]["label"] == golden_cases()[0]["expected"]["label"]
        )
