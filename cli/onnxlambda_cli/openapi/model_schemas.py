"""The OpenAPI schemas each model's manifest defines: a feature's value exactly as the Validator
accepts it, a /predict row and prediction, each V2 input tensor (name, datatype, shape and its
elements as the features' own schemas), and /feedback's outcome in the output's vocabulary.
"""

from __future__ import annotations

from typing import Any

from onnxlambda.contract.manifest import ClassificationOutput, Feature, Manifest, RegressionOutput
from onnxlambda_cli.openapi.components import ref


def feature_schema(feature: Feature) -> dict[str, Any]:
    """JSON Schema of one feature's value, exactly what the Validator accepts."""
    schema: dict[str, Any]
    if feature.is_categorical:
        categories: list[Any] = list(feature.categories or [])
        schema = {"type": "string", "enum": categories}
        if feature.nullable:
            schema = {"type": ["string", "null"], "enum": [*categories, None]}
    else:
        schema = {"type": "integer" if feature.dtype == "int64" else "number"}
        if feature.minimum is not None:
            schema["minimum"] = feature.minimum
        if feature.maximum is not None:
            schema["maximum"] = feature.maximum
        if feature.nullable:
            schema["type"] = [schema["type"], "null"]
    if feature.description:
        schema["description"] = feature.description
    return schema


def instance_schema(manifest: Manifest) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"One row for model {manifest.name} {manifest.version}: every feature is required "
        "(send null where the feature is nullable and the value unknown).",
        "properties": {f.name: feature_schema(f) for f in manifest.features},
        "required": manifest.feature_names,
        "additionalProperties": manifest.extra_fields != "reject",
    }


def prediction_schema(manifest: Manifest) -> dict[str, Any]:
    out = manifest.output
    inference_id = {"type": "string", "description": "<request id>-<row>"}
    if isinstance(out, ClassificationOutput):
        props: dict[str, Any] = {"label": {"type": "string", "enum": list(out.labels)}}
        if out.probability_tensor:
            props["probabilities"] = {
                "type": "object",
                "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in out.labels},
                "required": list(out.labels),
            }
        props["inference_id"] = inference_id
        return {"type": "object", "properties": props, "required": list(props)}
    assert isinstance(out, RegressionOutput)
    return {
        "type": "object",
        "properties": {out.name: {"type": "number"}, "inference_id": inference_id},
        "required": [out.name, "inference_id"],
    }


def v2_input_schema(manifest: Manifest, spec: dict[str, Any], max_rows: int) -> dict[str, Any]:
    """One model input exactly: its name, datatype, shape [N, width] with N <= max_rows, and its
    elements as each feature's own schema (the categories, ranges and nulls the Validator takes)."""
    model_input = next(i for i in manifest.inputs if i.name == spec["name"])
    by_name = {f.name: f for f in manifest.features}
    columns = [element_schema(by_name[n]) for n in model_input.features]
    rows = {"type": "integer", "minimum": 1, "maximum": max_rows}
    width = len(model_input.features)
    shapes = [{"type": "array", "prefixItems": [rows, {"const": width}], "minItems": 2, "maxItems": 2}]
    if width == 1:
        shapes.append({"type": "array", "prefixItems": [rows], "minItems": 1, "maxItems": 1})
    row = {"type": "array", "prefixItems": columns, "minItems": width, "maxItems": width}
    # Flat data is row-major; a flat element's column is its position, which JSON Schema cannot
    # name, so flat elements of a packed input are described as any of its columns.
    flat = columns[0] if width == 1 else {"anyOf": columns}
    names = ", ".join(model_input.features)
    return {
        "type": "object",
        "description": f"Tensor {model_input.name}: [N, {width}], columns in this order: {names}. "
        "`data` holds N x width elements, row-major, flat or nested by row (a count that differs "
        "from the shape is refused with 400: JSON Schema cannot say it). JSON null means missing "
        "where the feature is nullable. Binary tensor data: parameters.binary_data_size plus the "
        "Inference-Header-Content-Length header.",
        "properties": {
            "name": {"const": model_input.name},
            "datatype": {"const": spec["datatype"]},
            "shape": shapes[0] if len(shapes) == 1 else {"oneOf": shapes},
            "data": {"type": "array", "minItems": 1, "items": {"anyOf": [flat, row]}},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype"],
        # The elements come as JSON `data` or as binary data after the JSON header.
        "anyOf": [
            {"required": ["data"]},
            {"required": ["parameters"], "properties": {"parameters": {"required": ["binary_data_size"]}}},
        ],
    }


def element_schema(feature: Feature) -> dict[str, Any]:
    """A feature's value as a tensor element: the same schema as in a /predict row."""
    return {k: v for k, v in feature_schema(feature).items() if k != "description"}


def v2_schemas(manifest: Manifest, metadata: dict[str, Any], max_rows: int) -> dict[str, Any]:
    inputs = [v2_input_schema(manifest, spec, max_rows) for spec in metadata["inputs"]]
    names = [spec["name"] for spec in metadata["inputs"]]
    return {
        "V2InferInput": inputs[0] if len(inputs) == 1 else {"oneOf": inputs},
        "V2RequestedOutput": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [o["name"] for o in metadata["outputs"]]},
                "parameters": {"type": "object"},
            },
            "required": ["name"],
        },
        "V2InferRequest": {
            "type": "object",
            "description": "Every model input exactly once (see V2InferInput), all with the same N.",
            "properties": {
                "id": {"type": "string", "description": "Echoed in the response."},
                "inputs": {
                    "type": "array",
                    "items": ref("V2InferInput"),
                    "minItems": len(names),
                    "maxItems": len(names),
                    "allOf": [
                        {
                            "contains": {
                                "type": "object",
                                "properties": {"name": {"const": n}},
                                "required": ["name"],
                            }
                        }
                        for n in names
                    ],
                },
                "outputs": {"type": "array", "items": ref("V2RequestedOutput")},
                "parameters": {"type": "object"},
            },
            "required": ["inputs"],
        },
    }


def feedback_schemas(manifest: Manifest) -> dict[str, Any]:
    """POST /feedback: the actual outcome of an earlier prediction, in the output's vocabulary."""
    out = manifest.output
    actual: dict[str, Any] = (
        {"type": "string", "enum": list(out.labels)}
        if isinstance(out, ClassificationOutput)
        else {"type": "number"}
    )
    inference_id = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,200}$"}
    return {
        "FeedbackRequest": {
            "type": "object",
            "properties": {"inference_id": inference_id, "actual": actual},
            "required": ["inference_id", "actual"],
        },
        "FeedbackAccepted": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["accepted"]}, "inference_id": inference_id},
            "required": ["status", "inference_id"],
        },
    }


__all__ = [
    "element_schema",
    "feature_schema",
    "feedback_schemas",
    "instance_schema",
    "prediction_schema",
    "v2_input_schema",
    "v2_schemas",
]
