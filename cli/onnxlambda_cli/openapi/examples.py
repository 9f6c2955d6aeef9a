"""The OpenAPI document's examples, from the model's golden set: the first two golden cases as a
/predict request and response, a V2 request and response in the model's own tensors, and a
/feedback request with the first case's outcome.
"""

from __future__ import annotations

from typing import Any

from onnxlambda.contract.manifest import ClassificationOutput, GoldenSet, Manifest, RegressionOutput


def examples(manifest: Manifest, golden: GoldenSet, metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cases = golden.cases[:2]
    model_ref = {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
    predict_request = {"instances": [c.instance for c in cases]}
    predict_response = {
        "model": {**model_ref, "function_version": "1"},
        "predictions": [{**c.expected, "inference_id": f"<request id>-{i}"} for i, c in enumerate(cases)],
    }
    # One tensor per model input, by row: a packed [N, F] input carries its features in order.
    by_name = {i.name: i for i in manifest.inputs}
    inputs = [
        {
            "name": spec["name"],
            "datatype": spec["datatype"],
            "shape": [len(cases), len(by_name[spec["name"]].features)]
            if by_name[spec["name"]].rank == 2
            else [len(cases)],
            "data": [
                [c.instance.get(f) for f in by_name[spec["name"]].features]
                if by_name[spec["name"]].rank == 2
                else c.instance.get(by_name[spec["name"]].features[0])
                for c in cases
            ],
        }
        for spec in metadata["inputs"]
    ]
    out = manifest.output
    outputs: list[dict[str, Any]] = []
    for o in metadata["outputs"]:
        shape = [len(cases) if d == -1 else d for d in o["shape"]]
        if isinstance(out, ClassificationOutput) and o["name"] == (out.label_tensor or "label"):
            data: list[Any] = [c.expected["label"] for c in cases]
        elif isinstance(out, ClassificationOutput):
            data = [p for c in cases for p in _probabilities(c.expected, out.labels)]
        else:
            assert isinstance(out, RegressionOutput)
            data = [c.expected[out.name] for c in cases]
        outputs.append({"name": o["name"], "datatype": o["datatype"], "shape": shape, "data": data})
    return {
        "PredictRequest": predict_request,
        "PredictResponse": predict_response,
        # The true outcome of the first golden case: what a caller reports once it is known.
        "FeedbackRequest": {
            "inference_id": "golden-1-0",
            "actual": next(iter(cases[0].expected.values())),
        },
        "FeedbackAccepted": {"status": "accepted", "inference_id": "golden-1-0"},
        "V2InferRequest": {"id": "golden-1", "inputs": inputs},
        "V2InferResponse": {
            "model_name": manifest.name,
            "model_version": manifest.version,
            "id": "golden-1",
            "parameters": {
                "model_sha256": manifest.sha256,
                "function_version": "1",
                "inference_id_prefix": "<request id>",
            },
            "outputs": outputs,
        },
        "V2ModelMetadata": metadata,
    }


def _probabilities(expected: dict[str, object], labels: list[str]) -> list[object]:
    probabilities = expected.get("probabilities")
    assert isinstance(probabilities, dict)
    return [probabilities[label] for label in labels]


__all__ = ["examples"]
