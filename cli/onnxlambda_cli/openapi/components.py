"""The OpenAPI document's component schemas that no model changes: the error bodies, the
envelopes of /predict, /health and /model, and the V2 server's and model's metadata and
responses. `ref(name)` points at a component.
"""

from __future__ import annotations

from typing import Any, Final

REF_PREFIX: Final = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_PREFIX + name}


def static_schemas(max_rows: int) -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "Error": {
            "type": "object",
            "description": "The one error body of the project's own routes; never a stack trace.",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {
                            "type": "string",
                            "enum": [
                                "malformed_request",
                                "body_too_large",
                                "too_many_rows",
                                "validation_failed",
                                "not_found",
                                "method_not_allowed",
                                "model_not_ready",
                                "internal_error",
                                "invalid_feedback",
                            ],
                        },
                        "message": string,
                        "request_id": string,
                        "details": {"type": "array", "items": ref("FieldError")},
                        "truncated": {"type": "boolean"},
                    },
                    "required": ["code", "message", "details", "truncated"],
                }
            },
            "required": ["error"],
        },
        "FieldError": {
            "type": "object",
            "properties": {
                "row": {"type": ["integer", "null"]},
                "field": string,
                "code": string,
                "message": string,
            },
            "required": ["row", "field", "code", "message"],
        },
        "V2Error": {
            "type": "object",
            "description": "The Open Inference Protocol's error body.",
            "properties": {"error": string},
            "required": ["error"],
        },
        "ModelRef": {
            "type": "object",
            "properties": {"name": string, "version": string, "sha256": string, "function_version": string},
            "required": ["name", "version", "sha256", "function_version"],
        },
        "PredictRequest": {
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": ref("Instance"),
                    "minItems": 1,
                    "maxItems": max_rows,
                    "description": f"One object per row; at most {max_rows} (ONNXLAMBDA_MAX_ROWS).",
                }
            },
            "required": ["instances"],
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                "model": ref("ModelRef"),
                "predictions": {"type": "array", "items": ref("Prediction")},
            },
            "required": ["model", "predictions"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ready"]}, "model": ref("ModelRef")},
            "required": ["status", "model"],
        },
        "HealthNotReady": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["not_ready"]}, "reason": string},
            "required": ["status", "reason"],
        },
        "ModelContract": {
            "type": "object",
            "description": "The public manifest (see models/README.md): features, output, metrics, lineage.",
            "properties": {
                "name": string,
                "version": string,
                "sha256": string,
                "features": {"type": "array"},
                "inputs": {"type": "array"},
                "output": {"type": "object"},
            },
            "required": ["name", "version", "sha256", "features", "inputs", "output"],
        },
        "OpenAPIDocument": {
            "type": "object",
            "description": "This document.",
            "properties": {"openapi": string, "info": {"type": "object"}, "paths": {"type": "object"}},
            "required": ["openapi", "info", "paths"],
        },
        "V2ServerMetadata": {
            "type": "object",
            "properties": {
                "name": string,
                "version": string,
                "extensions": {"type": "array", "items": string},
            },
            "required": ["name", "version", "extensions"],
        },
        "V2Live": {"type": "object", "properties": {"live": {"type": "boolean"}}, "required": ["live"]},
        "V2Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}, "required": ["ready"]},
        "V2ModelReady": {
            "type": "object",
            "properties": {"name": string, "ready": {"type": "boolean"}},
            "required": ["name", "ready"],
        },
        "V2TensorMetadata": {
            "type": "object",
            "properties": {
                "name": string,
                "datatype": string,
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["name", "datatype", "shape"],
        },
        "V2ModelMetadata": {
            "type": "object",
            "properties": {
                "name": string,
                "versions": {"type": "array", "items": string},
                "platform": string,
                "inputs": {"type": "array", "items": ref("V2TensorMetadata")},
                "outputs": {"type": "array", "items": ref("V2TensorMetadata")},
            },
            "required": ["name", "versions", "platform", "inputs", "outputs"],
        },
        "V2InferOutput": {
            "type": "object",
            "properties": {
                "name": string,
                "datatype": string,
                "shape": {"type": "array", "items": {"type": "integer"}},
                "data": {"type": "array"},
            },
            "required": ["name", "datatype", "shape", "data"],
        },
        "V2InferResponse": {
            "type": "object",
            "properties": {
                "model_name": string,
                "model_version": string,
                "id": string,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "model_sha256": string,
                        "function_version": string,
                        "inference_id_prefix": {
                            "type": "string",
                            "description": "Row i's inference id (for POST /feedback) is <prefix>-<i>.",
                        },
                    },
                    "required": ["model_sha256", "function_version", "inference_id_prefix"],
                },
                "outputs": {"type": "array", "items": ref("V2InferOutput")},
            },
            "required": ["model_name", "model_version", "parameters", "outputs"],
        },
    }


__all__ = ["REF_PREFIX", "ref", "static_schemas"]
