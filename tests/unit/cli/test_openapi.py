"""The OpenAPI document: committed, current, derived from the routes and the manifest, served as is."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from functions.api import app
from onnxlambda.codecs.v2 import model_metadata
from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import OPENAPI_FILE, load_golden, load_manifest
from onnxlambda.serving.validation import Validator
from onnxlambda.settings import Settings
from onnxlambda_cli.cloudformation import load_template
from onnxlambda_cli.openapi import document as openapi
from onnxlambda_cli.openapi import reference
from onnxlambda_cli.openapi.command import LOCK, STALE, current_shape, generate, model_dirs, read_lock, update
from tests.conftest import MODELS, ROOT, FakeLambdaContext, golden_rows, load_event


@pytest.mark.parametrize("model_dir", model_dirs(), ids=lambda p: p.name)
def test_the_committed_document_is_the_generated_one(model_dir: Path) -> None:
    # GIVEN the routes, the manifest and the golden set as they are now
    # WHEN the document is generated THEN it is exactly the committed, reviewed one
    committed = (model_dir / OPENAPI_FILE).read_text()
    assert generate(model_dir) == committed, f"models/{model_dir.name}/openapi.json {STALE}"


def test_the_lock_pins_the_contract_version_to_the_api_shape() -> None:
    # GIVEN models/openapi.lock.json THEN it names the current CONTRACT_VERSION and the API's shape
    lock = read_lock(LOCK)
    assert (lock["contract_version"], lock["api_shape"]) == (openapi.CONTRACT_VERSION, current_shape()), (
        f"lock is stale: {STALE}"
    )


def test_a_new_model_does_not_move_the_api_shape(tmp_path: Path) -> None:
    # GIVEN the API's shape as locked
    before = current_shape()
    # WHEN another model is served (its document is generated: other features, classes, outputs)
    text = generate(MODELS / "diabetes")
    assert json.loads(text)["info"]["version"] == openapi.CONTRACT_VERSION
    # THEN the shape, which only the reference models and the generator decide, is unchanged
    assert current_shape() == before


def test_a_changed_api_is_not_written_without_a_version_bump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a committed document and its lock at version 1.0.0
    committed = (MODELS / "penguins" / OPENAPI_FILE).read_text()
    path, lock = tmp_path / "penguins" / OPENAPI_FILE, tmp_path / "openapi.lock.json"
    path.parent.mkdir()
    path.write_text(committed)
    shape = current_shape()
    assert update({path: committed}, shape, lock, "1.0.0") == 0
    # WHEN the generator changes what a caller sees (a route's summary here), for every model
    original = openapi.build_document

    def changed_build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        doc = original(*args, **kwargs)
        doc["paths"]["/predict"]["post"]["summary"] = "changed"
        return doc

    monkeypatch.setattr(reference, "build_document", changed_build)
    changed_shape = current_shape()
    assert changed_shape != shape
    doc = json.loads(committed)
    doc["paths"]["/predict"]["post"]["summary"] = "changed"
    changed = json.dumps(doc)
    # THEN nothing is written under the same version and the message asks for a bump
    assert update({path: changed}, changed_shape, lock, "1.0.0") == 1
    assert "CONTRACT_VERSION is still 1.0.0: bump it" in capsys.readouterr().err
    assert path.read_text() == committed
    # AND with the version bumped, the document and the lock are written
    assert update({path: changed}, changed_shape, lock, "1.1.0") == 0
    assert path.read_text() == changed
    assert read_lock(lock) == {"contract_version": "1.1.0", "api_shape": changed_shape}
    # AND a model-only change (another document, same shape) needs no further bump
    assert update({path: committed}, changed_shape, lock, "1.1.0") == 0


def document(model: str = "penguins") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((MODELS / model / OPENAPI_FILE).read_text())
    return doc


def validator(doc: dict[str, Any], name: str) -> Any:
    """A JSON Schema validator for one component, resolving its $refs inside the document."""
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


def test_contract_version_is_semver_and_in_every_document() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", openapi.CONTRACT_VERSION)
    for model_dir in model_dirs():
        doc = json.loads((model_dir / OPENAPI_FILE).read_text())
        manifest = load_manifest(model_dir)
        assert doc["info"]["version"] == openapi.CONTRACT_VERSION
        assert doc["info"]["x-model"] == {"name": manifest.name, "version": manifest.version}


def test_routes_are_declared_once_on_the_handler_and_documented_from_there() -> None:
    # GIVEN the API function's HttpApi events in template.yaml and the resolver's routes
    template = load_template((ROOT / "template.yaml").read_text())
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    declared = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
    served = {
        (method, path)
        for path, operations in json.loads(app.app.get_openapi_json_schema())["paths"].items()
        for method in operations
    }
    # THEN API Gateway hands every path and method to the function through one greedy route
    assert declared == {("ANY", "/{proxy+}")}
    # AND the document lists exactly the routes the handler serves, each as its decorator says
    assert {(m, p) for p, ops in document()["paths"].items() for m in ops} == served


def test_a_route_without_documented_answers_is_refused_by_the_builder() -> None:
    # GIVEN the skeleton of a route whose decorator declares no answers
    skeleton = {"paths": {"/new": {"get": {"summary": "new", "responses": {"200": {"description": "x"}}}}}}
    manifest = load_manifest(MODELS / "penguins")
    golden = load_golden(MODELS / "penguins", manifest)
    v2 = model_metadata(manifest)
    # WHEN the document is built THEN it names the route and where answers are declared
    with pytest.raises(ValueError, match=r"GET /new must document one success and its errors"):
        openapi.build_document(skeleton, manifest, golden, v2, max_rows=10)


def test_every_error_status_documents_the_error_body() -> None:
    doc = document()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    continue
                schema = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                expected = "V2Error" if path.startswith("/v2") else "Error"
                if (path, status) == ("/health", "503"):
                    expected = "HealthNotReady"
                assert schema == expected, (method, path, status)
    statuses = {s for ops in doc["paths"].values() for op in ops.values() for s in op["responses"]}
    assert statuses == {"200", "202", "400", "404", "413", "422", "500", "503"}


def test_the_instance_schema_is_the_manifests_contract() -> None:
    # GIVEN the penguins manifest and the Instance schema derived from it
    doc = document()
    instance = doc["components"]["schemas"]["Instance"]
    manifest = load_manifest(MODELS / "penguins")
    # THEN every feature is required, with its type, range, categories and nullability
    assert instance["required"] == manifest.feature_names
    assert instance["additionalProperties"] is False
    assert instance["properties"]["island"]["enum"] == ["Biscoe", "Dream", "Torgersen"]
    assert instance["properties"]["sex"]["enum"] == ["female", "male", None]
    bill = instance["properties"]["bill_length_mm"]
    assert (bill["type"], bill["minimum"], bill["maximum"]) == (["number", "null"], 19.0, 73.0)


@pytest.mark.parametrize("model", [d.name for d in model_dirs()])
def test_schema_and_validator_agree_on_golden_rows_and_on_broken_ones(model: str) -> None:
    # GIVEN a model's document and its Validator
    doc = document(model)
    schema = validator(doc, "Instance")
    manifest = load_manifest(MODELS / model)
    check = Validator(manifest, max_rows=1000)
    rows = golden_rows(MODELS / model)
    # THEN every golden row is valid for both
    assert all(schema.is_valid(row) for row in rows)
    check.validate(rows)
    # AND each way of breaking one value is refused by both
    for feature in manifest.features:
        broken: list[object] = [True, "nope" if not feature.is_categorical else 1.5, [1]]
        if not feature.nullable:
            broken.append(None)
        if feature.maximum is not None:
            broken.append(feature.maximum + 1)
        if feature.categories:
            broken.append("not-a-" + feature.categories[0])
        for value in broken:
            row = {**rows[0], feature.name: value}
            assert not schema.is_valid(row), (feature.name, value)
            with pytest.raises(ServingError):
                check.validate([row])
    extra = {**rows[0], "colour": "blue"}
    assert not schema.is_valid(extra)
    with pytest.raises(ServingError):
        check.validate([extra])


@pytest.mark.parametrize("model", [d.name for d in model_dirs()])
def test_examples_from_the_golden_set_match_their_schemas(model: str) -> None:
    doc = document(model)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            media = [operation.get("requestBody", {}).get("content", {}).get("application/json")]
            media += [r["content"]["application/json"] for r in operation["responses"].values()]
            for m in media:
                if m and "example" in m:
                    name = m["schema"]["$ref"].rsplit("/", 1)[1]
                    validator(doc, name).validate(m["example"])
                    assert path  # each example is checked against the schema it illustrates


def test_the_document_is_served_verbatim_and_never_built_at_runtime(
    lambda_context: FakeLambdaContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the API handler with ONNXLAMBDA_MODEL_DIR at models/penguins
    event = load_event("api_model")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
    # WHEN GET /openapi.json THEN the committed bytes
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200
    assert response["body"] == (MODELS / "penguins" / OPENAPI_FILE).read_text()
    # AND with no document beside the model, a 503 in the documented error body (not a 500,
    # and not a document generated on the fly)
    monkeypatch.setattr(app, "settings", dataclasses.replace(Settings.from_env(), model_dir=tmp_path))
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 503
    assert validator(document(), "Error").is_valid(json.loads(response["body"]))


def _example(doc: dict[str, Any], schema: str) -> Any:
    """The example the document gives for a component (request bodies and 200 responses)."""
    for operations in doc["paths"].values():
        for operation in operations.values():
            media = [operation.get("requestBody", {}).get("content", {}).get("application/json")]
            media += [r["content"]["application/json"] for r in operation["responses"].values()]
            for m in media:
                if m and "example" in m and m["schema"]["$ref"].endswith(f"/{schema}"):
                    return m["example"]
    raise AssertionError(f"no example for {schema}")


@pytest.mark.parametrize("model_dir", model_dirs(), ids=lambda p: p.name)
def test_the_documented_examples_are_what_the_model_answers(model_dir: Path) -> None:
    # GIVEN a model's document and the model served in process
    from onnxlambda.codecs.v2 import V2Model
    from onnxlambda.serving.runtime import ModelRuntime
    from onnxlambda.serving.service import Service

    doc = json.loads((model_dir / OPENAPI_FILE).read_text())
    service = Service(ModelRuntime.load(model_dir), Settings.from_env())
    # WHEN the documented /predict and V2 requests are sent, as a client copying them would
    predicted = service.predict(_example(doc, "PredictRequest"))
    v2 = V2Model(service).infer(json.dumps(_example(doc, "V2InferRequest")).encode(), None)
    # THEN the answers are the documented responses (a packed [N, F] input included: its example
    # carries N x F values, not one per row)
    tolerance = load_manifest(model_dir).golden
    documented = _example(doc, "PredictResponse")["predictions"]
    assert len(predicted["predictions"]) == len(documented)
    for got_row, want_row in zip(predicted["predictions"], documented, strict=True):
        for key, want_value in want_row.items():
            if key == "inference_id":
                continue
            if isinstance(want_value, dict):  # probabilities, rounded to 6 decimals on both sides
                assert got_row[key] == pytest.approx(want_value, abs=tolerance.probability_tolerance)
            elif isinstance(want_value, float):  # a regression value, rounded in the golden set
                assert got_row[key] == pytest.approx(want_value, abs=tolerance.value_tolerance)
            else:
                assert got_row[key] == want_value
    expected = {o["name"]: o for o in _example(doc, "V2InferResponse")["outputs"]}
    for output in v2["outputs"]:
        assert output["shape"] == expected[output["name"]]["shape"]
        got, want = output["data"], expected[output["name"]]["data"]
        if output["datatype"] == "BYTES":
            assert got == want
        else:
            assert got == pytest.approx(want, abs=tolerance.value_tolerance)
