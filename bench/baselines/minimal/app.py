"""Baseline: what a hand-written Lambda sample does. numpy + onnxruntime, json in and out.

No validation, no logging, no metrics, no sha256 check: the floor a framework-free handler sets
for cold start and per-request cost. Never deployed; `make bench` runs it under the emulator
beside the real function, with the same core and model layers.
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

_DIR = Path(os.environ.get("ONNXLAMBDA_MODEL_DIR", "/opt/model"))
_MANIFEST = json.loads((_DIR / "manifest.json").read_text())
_DTYPES: dict[str, Any] = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "string": object}
# Each graph input from its features' values (one [N, 1] per feature, or a packed [N, F] matrix).
_INPUTS = [(i["name"], i["features"], _DTYPES[i["dtype"]], i.get("rank", 2)) for i in _MANIFEST["inputs"]]
_OUT = _MANIFEST["output"]
_KEYS = _OUT.get("class_values") or _OUT.get("labels")  # the model's own class values, in its order
_NAME_OF = dict(zip(_KEYS or [], _OUT.get("labels") or [], strict=True))
_options = ort.SessionOptions()
_options.intra_op_num_threads = int(
    os.environ.get("ONNXLAMBDA_ORT_INTRA_OP_THREADS", "1")
)  # a count, as benched
_options.inter_op_num_threads = 1
_SESSION = ort.InferenceSession(
    str(_DIR / _MANIFEST["model_file"]), sess_options=_options, providers=["CPUExecutionProvider"]
)


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    rows = json.loads(event["body"])["instances"]
    feeds = {}
    for tensor, features, dtype, rank in _INPUTS:
        matrix = np.array([[row[name] for name in features] for row in rows], dtype=dtype)
        feeds[tensor] = matrix if rank == 2 else matrix.reshape(-1)
    if _OUT["kind"] == "classification":
        labels, probs = _SESSION.run([_OUT["label_tensor"], _OUT["probability_tensor"]], feeds)
        if _OUT.get("probability_format") == "zipmap":  # a list of {class: probability} maps
            probs = np.array([[p[k] for k in _KEYS] for p in probs], dtype=np.float32)
        names = _OUT["labels"]
        predictions: list[dict[str, Any]] = [
            {"label": _NAME_OF.get(label, str(label)), "probabilities": dict(zip(names, p, strict=True))}
            for label, p in zip(labels.reshape(-1).tolist(), probs.round(6).tolist(), strict=True)
        ]
    else:
        (values,) = _SESSION.run([_OUT["value_tensor"]], feeds)
        predictions = [{_OUT["name"]: v} for v in values.reshape(-1).tolist()]
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"predictions": predictions}),
    }
