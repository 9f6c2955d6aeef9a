"""The API's shape, independent of any model: what `CONTRACT_VERSION` versions.

A model's OpenAPI document mixes two things: the API (routes, envelopes, error bodies, how a
feature becomes a JSON Schema, how V2 tensors are described) and one model's vocabulary (its
features, ranges, categories, classes). Importing or retraining a model changes only the second
and needs no contract bump; changing the first does. So the version lock fingerprints the
documents built for two fixed reference models (a classifier with a packed numeric input and a
string input, and a regressor), without examples: any change to how documents are generated
shows up there, and no real model can move it.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from onnxlambda.codecs.v2 import model_metadata
from onnxlambda.contract.manifest import GoldenSet, Manifest, dump_json
from onnxlambda.contract.strict import build
from onnxlambda_cli.openapi.document import build_document

_NUMERIC = {
    "kind": "numeric",
    "count": 10,
    "missing": 1,
    "mean": 1.0,
    "std_dev": 1.0,
    "min": 0.0,
    "max": 2.0,
    "cut_points": [1.0],
    "counts": [4, 5],
}
_COMMON: dict[str, Any] = {
    "version": "1.0.0",
    "sha256": "0" * 64,
    "training": {
        "dataset": "reference",
        "source": "reference",
        "fingerprint_sha256": "0" * 64,
        "rows": 10,
        "train_rows": 10,
        "test_rows": 0,
    },
    "lineage": {"kind": "imported", "created_at": "2026-01-01T00:00:00Z"},
}


def reference_models() -> list[tuple[Manifest, GoldenSet]]:
    classifier = build(
        Manifest,
        {
            **_COMMON,
            "name": "reference-classifier",
            "features": [
                {"name": "x", "dtype": "float32", "nullable": True, "minimum": 0.0, "maximum": 10.0},
                {"name": "y/z", "dtype": "float32", "description": "a name that is not an identifier"},
                {"name": "c", "dtype": "string", "categories": ["a", "b"], "nullable": True},
            ],
            "inputs": [
                {"name": "float_input", "dtype": "float32", "features": ["x", "y/z"]},
                {"name": "c", "dtype": "string", "features": ["c"]},
            ],
            "output": {
                "kind": "classification",
                "label_tensor": "output_label",
                "probability_tensor": "output_probability",
                "probability_format": "zipmap",
                "labels": ["no", "yes"],
                "class_values": [0, 1],
            },
            "metrics": [{"name": "accuracy", "value": 0.9}],
            "primary_metric": "accuracy",
            "baselines": {
                "features": {
                    "x": _NUMERIC,
                    "y/z": _NUMERIC,
                    "c": {"kind": "categorical", "count": 10, "missing": 1, "counts": {"a": 5, "b": 4}},
                },
                "output": {"kind": "categorical", "count": 10, "missing": 0, "counts": {"no": 5, "yes": 5}},
            },
        },
    )
    regressor = build(
        Manifest,
        {
            **_COMMON,
            "name": "reference-regressor",
            "features": [{"name": "x", "dtype": "float64", "minimum": -1.0, "maximum": 1.0}],
            "inputs": [{"name": "input", "dtype": "float64", "features": ["x"], "rank": 1}],
            "output": {"kind": "regression", "value_tensor": "variable", "name": "value"},
            "baselines": {"features": {"x": _NUMERIC}, "output": _NUMERIC},
        },
    )
    return [(m, _golden(m)) for m in (classifier, regressor)]


def _golden(manifest: Manifest) -> GoldenSet:
    instance = {f.name: (f.categories[0] if f.categories else 1.0) for f in manifest.features}
    out = manifest.output
    expected: dict[str, Any] = (
        {"label": out.labels[0], "probabilities": dict.fromkeys(out.labels, 0.5)}
        if out.kind == "classification"
        else {out.name: 0.5}
    )
    return build(
        GoldenSet,
        {
            "model_name": manifest.name,
            "model_version": manifest.version,
            "model_sha256": manifest.sha256,
            "cases": [{"instance": instance, "expected": expected}],
        },
    )


def _without_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_examples(v) for k, v in node.items() if k != "example"}
    if isinstance(node, list):
        return [_without_examples(v) for v in node]
    return node


def api_shape(skeleton: dict[str, Any], *, max_rows: int) -> str:
    """sha256 of the reference models' documents, without examples or the version number."""
    docs = []
    for manifest, golden in reference_models():
        metadata = model_metadata(manifest)
        doc = build_document(copy.deepcopy(skeleton), manifest, golden, metadata, max_rows=max_rows)
        doc["info"].pop("version", None)
        docs.append(_without_examples(doc))
    return hashlib.sha256(dump_json({"documents": docs}).encode()).hexdigest()


__all__ = ["api_shape", "reference_models"]
