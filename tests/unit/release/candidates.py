"""Candidate model versions for release-safety tests, made from the committed real exports.

A candidate is a copy of a shipped model directory (skl2onnx export, manifest, golden set) with
its graph's weights changed through the `onnx` package and/or its manifest edited, then
re-manifested the way `onnxlambda import` stamps a version: the sha256 of the new bytes and a
new version in the manifest, the golden set's model identity to match (its expected answers are
left alone: they are what the *old* model said).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tests.conftest import MODELS

GraphEdit = Callable[[onnx.ModelProto], None]
ManifestEdit = Callable[[dict[str, Any]], None]


def manifest_json(model: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MODELS / model / "manifest.json").read_text())
    return copy.deepcopy(data)


def _node(graph: onnx.ModelProto, op_type: str) -> onnx.NodeProto:
    [node] = [n for n in graph.graph.node if n.op_type == op_type]
    assert isinstance(node, onnx.NodeProto)
    return node


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto:
    [attribute] = [a for a in node.attribute if a.name == name]
    assert isinstance(attribute, onnx.AttributeProto)
    return attribute


def swap_classes(first: int, second: int) -> GraphEdit:
    """Swap two classes' rows of a LinearClassifier (coefficients and intercepts): the model now
    answers `second` where it answered `first` and the other way round."""

    def edit(graph: onnx.ModelProto) -> None:
        node = _node(graph, "LinearClassifier")
        labels = len(_attribute(node, "classlabels_strings").strings) or len(
            _attribute(node, "classlabels_ints").ints
        )
        coefficients = _attribute(node, "coefficients")
        rows = np.asarray(coefficients.floats, dtype=np.float64).reshape(labels, -1)
        rows[[first, second]] = rows[[second, first]]
        coefficients.floats[:] = rows.reshape(-1).tolist()
        intercepts = _attribute(node, "intercepts")
        values = list(intercepts.floats)
        values[first], values[second] = values[second], values[first]
        intercepts.floats[:] = values

    return edit


def perturb_classifier(scale: float, seed: int) -> GraphEdit:
    """Add seeded Gaussian noise of `scale` times each coefficient's magnitude (a retrain-sized
    change: most answers stay, a few near the boundaries flip)."""

    def edit(graph: onnx.ModelProto) -> None:
        coefficients = _attribute(_node(graph, "LinearClassifier"), "coefficients")
        w = np.asarray(coefficients.floats, dtype=np.float64)
        noise = np.random.default_rng(seed).normal(0.0, scale, w.size) * np.abs(w)
        coefficients.floats[:] = (w + noise).tolist()

    return edit


def scale_tree_outputs(factor: float) -> GraphEdit:
    """Multiply a TreeEnsembleRegressor's leaf values: every prediction is `factor` times what it was
    (the base value too, when there is one)."""

    def edit(graph: onnx.ModelProto) -> None:
        node = _node(graph, "TreeEnsembleRegressor")
        weights = _attribute(node, "target_weights")
        weights.floats[:] = [w * factor for w in weights.floats]
        for attribute in node.attribute:
            if attribute.name == "base_values":
                attribute.floats[:] = [b * factor for b in attribute.floats]

    return edit


def write_candidate(
    model: str,
    target: Path,
    *,
    version: str,
    graph_edit: GraphEdit | None = None,
    manifest_edit: ManifestEdit | None = None,
) -> Path:
    """A model directory under `target`: the shipped `model` with the edits, stamped `version`."""
    shutil.copytree(MODELS / model, target)
    if graph_edit is not None:
        graph = onnx.load(target / "model.onnx")
        graph_edit(graph)
        onnx.save(graph, target / "model.onnx")
    sha = hashlib.sha256((target / "model.onnx").read_bytes()).hexdigest()
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(version=version, sha256=sha)
    if manifest_edit is not None:
        manifest_edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    golden = json.loads((target / "golden.json").read_text())
    golden.update(model_version=version, model_sha256=sha, model_name=manifest["name"])
    (target / "golden.json").write_text(json.dumps(golden, indent=2))
    return target


def regolden(model_dir: Path) -> Path:
    """Rewrite the golden set's expected answers with what this model answers: a candidate whose
    golden set was regenerated with it passes the golden gate whatever its weights are."""
    from onnxlambda.serving.dataplane import answers
    from onnxlambda.serving.runtime import ModelRuntime
    from onnxlambda.serving.validation import Validator

    runtime = ModelRuntime.load(model_dir)
    golden = json.loads((model_dir / "golden.json").read_text())
    rows = [case["instance"] for case in golden["cases"]]
    batch = Validator(runtime.manifest, max_rows=len(rows)).validate(rows)
    for case, answer in zip(
        golden["cases"], answers(runtime.manifest, runtime.run(batch.columns, batch.rows)), strict=True
    ):
        case["expected"] = answer
    (model_dir / "golden.json").write_text(json.dumps(golden, indent=2))
    return model_dir
