"""Sending an imported model's rows through each protocol, and reading the answers back.

Shared by the in-process tests (tests/unit/cli/importer) and the emulated ones (tests/integration):
the same events go to `lambda_handler` in process or to the built function under the emulator,
and the answers of /predict, V2 and batch scoring are read into one shape,
[{"label", "probabilities": {name: p}}] or [{"value"}], to compare with onnxruntime on the
user's original file (tests.exports.Export.oracle).
"""

from __future__ import annotations

import copy
import csv
import io
import json
from typing import Any

import pytest

from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from tests.conftest import load_event
from tests.exports import Export, Row

PROBABILITY_TOLERANCE = 1e-5
VALUE_TOLERANCE = 1e-4
BATCH_KEY = "incoming/imported.csv"
Answer = dict[str, Any]


def http_event(template: str, path: str, body: object, route_key: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event, from one of events/ with another body and path."""
    event = copy.deepcopy(load_event(template))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["body"] = json.dumps(body)
    return event


def predict_event(rows: list[Row]) -> dict[str, Any]:
    return http_event("api_predict_one", "/predict", {"instances": rows}, "POST /predict")


def v2_event(export: Export, rows: list[Row]) -> dict[str, Any]:
    event = http_event(
        "v2_infer",
        f"/v2/models/{export.name}/infer",
        {"id": "imported", "inputs": export.v2_inputs(rows)},
        "POST /v2/models/{model_name}/infer",
    )
    event["pathParameters"] = {"model_name": export.name}
    return event


def s3_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    event = copy.deepcopy(load_event("s3_put_csv"))
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = bucket
    record["object"].update(key=key, size=size)
    return event


def csv_of(rows: list[Row], columns: list[str]) -> bytes:
    """The rows as a batch file: the user's column names in the header, empty cells for missing."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if r[c] is None else r[c] for c in columns] for r in rows])
    return buffer.getvalue().encode()


# -- reading the answers ---------------------------------------------------------------------------


def from_predict(response: dict[str, Any], manifest: Manifest) -> list[Answer]:
    assert response["statusCode"] == 200, response["body"]
    predictions = json.loads(response["body"])["predictions"]
    if isinstance(manifest.output, ClassificationOutput):
        return [{"label": p["label"], "probabilities": p.get("probabilities")} for p in predictions]
    return [{"value": p[manifest.output.name]} for p in predictions]


def from_v2(response: dict[str, Any], manifest: Manifest) -> list[Answer]:
    assert response["statusCode"] == 200, response["body"]
    outputs = {o["name"]: o for o in json.loads(response["body"])["outputs"]}
    out = manifest.output
    if not isinstance(out, ClassificationOutput):
        return [{"value": v} for v in outputs[out.value_tensor]["data"]]
    labels = outputs[out.label_tensor or "label"]["data"]
    answers: list[Answer] = [{"label": label, "probabilities": None} for label in labels]
    if out.probability_tensor is not None:
        tensor = outputs[out.probability_tensor]
        width = tensor["shape"][1]
        assert width == len(out.labels)
        for i, answer in enumerate(answers):
            answer["probabilities"] = dict(
                zip(out.labels, tensor["data"][i * width : (i + 1) * width], strict=True)
            )
    return answers


def from_scored_csv(data: bytes, manifest: Manifest) -> list[Answer]:
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    out = manifest.output
    if not isinstance(out, ClassificationOutput):
        return [{"value": float(r[out.name])} for r in rows]
    return [
        {
            "label": r["label"],
            "probabilities": {name: float(r[f"probability_{name}"]) for name in out.labels}
            if out.probability_tensor
            else None,
        }
        for r in rows
    ]


def assert_same(served: list[Answer], oracle: list[Answer], what: str) -> None:
    """Labels equal, probabilities within 1e-5 and values within 1e-4 of onnxruntime's."""
    assert len(served) == len(oracle), what
    for i, (got, want) in enumerate(zip(served, oracle, strict=True)):
        if "value" in want:
            assert got["value"] == pytest.approx(want["value"], abs=VALUE_TOLERANCE), (what, i)
            continue
        assert got["label"] == want["label"], (what, i)
        if got["probabilities"] is not None:
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=PROBABILITY_TOLERANCE), (
                what,
                i,
            )


__all__ = [
    "BATCH_KEY",
    "assert_same",
    "csv_of",
    "from_predict",
    "from_scored_csv",
    "from_v2",
    "predict_event",
    "s3_event",
    "v2_event",
]
