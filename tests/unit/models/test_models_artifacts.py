"""The committed model directories (models/*/) agree with their manifest and reproduce.

Every test here runs over whatever models/* holds: adding a model directory (by `onnxlambda
import` or a training script) needs no edit here. Nothing assumes a model's name, its label type
(int64 or string), its output form (tensor or ZipMap, [N] or [N, 1]) or its golden-set size.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from onnxlambda.contract.manifest import (
    MANIFEST_FILE,
    OPENAPI_FILE,
    ClassificationOutput,
    Manifest,
    load_golden,
    load_manifest,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_DIR = REPO_ROOT / "models"
MODEL_DIRS = sorted(p.parent for p in MODELS_DIR.glob(f"*/{MANIFEST_FILE}"))
TRAINED = sorted(p.parent for p in MODELS_DIR.glob("*/train.py"))
ARTIFACTS = ["model.onnx", "manifest.json", "golden.json", "MODEL_CARD.md", OPENAPI_FILE]
ONNX_TYPES = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "string": "tensor(string)",
}


def _ids(dirs: list[Path]) -> list[str]:
    return [d.name for d in dirs]


def test_there_are_models_and_each_ships_every_artifact() -> None:
    # GIVEN the models/ directory WHEN listing the directories with a manifest
    # THEN there is at least one, and each holds every file the model layer ships
    assert MODEL_DIRS
    for model_dir in MODEL_DIRS:
        missing = [a for a in ARTIFACTS if not (model_dir / a).is_file()]
        assert not missing, f"{model_dir.name} lacks {missing}"


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_manifest_loads_and_sha256_matches_model(model_dir: Path) -> None:
    # GIVEN a committed model directory
    # WHEN its manifest is loaded through the serving code's loader
    manifest = load_manifest(model_dir)
    # THEN it names the directory's model and its sha256 is that of model.onnx
    assert manifest.name == model_dir.name
    assert hashlib.sha256((model_dir / manifest.model_file).read_bytes()).hexdigest() == manifest.sha256


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_golden_header_matches_manifest(model_dir: Path) -> None:
    # GIVEN a committed model's manifest
    manifest = load_manifest(model_dir)
    # WHEN its golden set is loaded
    golden = load_golden(model_dir, manifest)
    # THEN the header identifies exactly this model version, there is at least one case, and
    # the cases use exactly its features
    assert (golden.model_name, golden.model_version, golden.model_sha256) == (
        manifest.name,
        manifest.version,
        manifest.sha256,
    )
    assert len(golden.cases) >= 1
    for case in golden.cases:
        assert set(case.instance) == set(manifest.feature_names)


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_onnx_inputs_are_the_manifest_inputs(model_dir: Path) -> None:
    # GIVEN a committed model and its manifest
    manifest = load_manifest(model_dir)
    # WHEN the model is opened with onnxruntime
    sess = ort.InferenceSession(str(model_dir / manifest.model_file), providers=["CPUExecutionProvider"])
    # THEN its inputs are the manifest's inputs: named, typed, ranked and as wide as the features
    # they carry (a dynamic width is whatever the manifest places)
    graph = {
        i.name: (i.type, len(i.shape), i.shape[1] if len(i.shape) == 2 else 1) for i in sess.get_inputs()
    }
    expected = {i.name: (ONNX_TYPES[i.dtype], i.rank, len(i.features)) for i in manifest.inputs}
    assert graph.keys() == expected.keys()
    for name, (kind, rank, width) in graph.items():
        assert (kind, rank) == expected[name][:2]
        assert width == expected[name][2] or not isinstance(width, int)
    # AND the output tensors the manifest refers to exist
    outputs = {o.name for o in sess.get_outputs()}
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        assert {t for t in (out.label_tensor, out.probability_tensor) if t} <= outputs
    else:
        assert out.value_tensor in outputs


def _installed_versions_match(manifest: Manifest) -> bool:
    from models._common import library_versions

    return library_versions() == manifest.training.library_versions


@pytest.mark.parametrize("model_dir", TRAINED, ids=_ids(TRAINED))
def test_retraining_reproduces_committed_artifacts(model_dir: Path, tmp_path: Path) -> None:
    # GIVEN the committed artifacts of a model trained by its train.py, with the pinned libraries
    if not _installed_versions_match(load_manifest(model_dir)):
        pytest.skip("installed library versions differ from the ones the committed model was built with")
    train = importlib.import_module(f"models.{model_dir.name}.train")
    # WHEN the training script is re-run into a temporary directory (export, then import)
    train.main(["--out", str(tmp_path)])
    # THEN every artifact is byte-for-byte identical to the committed one
    for artifact in ARTIFACTS:
        assert (tmp_path / artifact).read_bytes() == (model_dir / artifact).read_bytes(), artifact


def _feeds(manifest: Manifest, instances: list[dict[str, Any]]) -> dict[str, np.ndarray[Any, Any]]:
    """What the ONNX file is fed for these rows, straight from ONNX semantics: NaN for a missing
    number, the feature's missing token for a missing string, features in their input's order."""
    by_name = {f.name: f for f in manifest.features}
    feeds = {}
    for i in manifest.inputs:
        cells = [
            [
                (by_name[f].missing_string if i.dtype == "string" else np.nan) if row[f] is None else row[f]
                for f in i.features
            ]
            for row in instances
        ]
        array = np.array(cells, dtype=object if i.dtype == "string" else ONNX_TYPES_NP[i.dtype])
        feeds[i.name] = array if i.rank == 2 else array.reshape(-1)
    return feeds


ONNX_TYPES_NP: dict[str, Any] = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_golden_cases_reproduce_with_onnxruntime(model_dir: Path) -> None:
    # GIVEN a committed model, its manifest and golden set
    manifest = load_manifest(model_dir)
    golden = load_golden(model_dir, manifest)
    sess = ort.InferenceSession(str(model_dir / manifest.model_file), providers=["CPUExecutionProvider"])
    feeds = _feeds(manifest, [dict(c.instance) for c in golden.cases])
    out = manifest.output
    # WHEN the raw file is run on the golden rows THEN it reproduces every expected answer
    if isinstance(out, ClassificationOutput):
        keys: list[Any] = list(out.class_values) if out.class_values is not None else list(out.labels)
        name_of = dict(zip(keys, out.labels, strict=True))
        wanted = [t for t in (out.label_tensor, out.probability_tensor) if t]
        got = dict(zip(wanted, sess.run(wanted, feeds), strict=True))
        for i, case in enumerate(golden.cases):
            if out.probability_tensor is not None:
                raw = got[out.probability_tensor][i]
                # a ZipMap row is {class value: p}; a tensor row is in class order
                probs = [raw[k] for k in keys] if isinstance(raw, dict) else list(raw)
                expected = case.expected["probabilities"]
                assert isinstance(expected, dict)
                assert [expected[label] for label in out.labels] == pytest.approx(
                    [float(p) for p in probs], abs=manifest.golden.probability_tolerance
                )
            if out.label_tensor is not None:
                raw_label = np.asarray(got[out.label_tensor]).reshape(-1)[i]
                assert case.expected["label"] == name_of[raw_label.item() if out.class_values else raw_label]
    else:
        (values,) = sess.run([out.value_tensor], feeds)
        for case, value in zip(golden.cases, np.asarray(values).reshape(-1), strict=True):
            assert case.expected[out.name] == pytest.approx(float(value), abs=manifest.golden.value_tolerance)
