"""The committed example-model artifacts (models/*/) agree with their manifest and reproduce."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from onnxlambda.contract.manifest import MANIFEST_FILE, Manifest, load_golden, load_manifest

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_DIR = REPO_ROOT / "models"
MODEL_DIRS = sorted(p.parent for p in MODELS_DIR.glob(f"*/{MANIFEST_FILE}"))
ARTIFACTS = ["model.onnx", "manifest.json", "golden.json", "MODEL_CARD.md"]
ONNX_TYPES = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "string": "tensor(string)",
}


def _ids(dirs: list[Path]) -> list[str]:
    return [d.name for d in dirs]


def test_example_models_exist() -> None:
    # GIVEN the models/ directory WHEN listing models with a manifest THEN both examples are there
    assert {d.name for d in MODEL_DIRS} >= {"penguins", "diabetes"}


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
    # THEN the header identifies exactly this model version and the cases use only its features
    assert (golden.model_name, golden.model_version, golden.model_sha256) == (
        manifest.name,
        manifest.version,
        manifest.sha256,
    )
    assert 30 <= len(golden.cases) <= 40
    for case in golden.cases:
        assert set(case.instance) == set(manifest.feature_names)


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_onnx_inputs_are_the_manifest_features(model_dir: Path) -> None:
    # GIVEN a committed model and its manifest
    manifest = load_manifest(model_dir)
    # WHEN the model is opened with onnxruntime
    sess = ort.InferenceSession(str(model_dir / manifest.model_file), providers=["CPUExecutionProvider"])
    # THEN its inputs are the manifest's inputs: named, typed and as wide as the features they carry
    inputs = {i.name: (i.type, len(i.shape), i.shape[1]) for i in sess.get_inputs()}
    assert inputs == {i.name: (ONNX_TYPES[i.dtype], 2, len(i.features)) for i in manifest.inputs}
    # AND the output tensors the manifest refers to exist
    outputs = {o.name for o in sess.get_outputs()}
    out = manifest.output
    if out.kind == "classification":
        assert {out.label_tensor, out.probability_tensor} <= outputs
    else:
        assert out.value_tensor in outputs


def _installed_versions_match(manifest: Manifest) -> bool:
    from models._common import library_versions

    return library_versions() == manifest.training.library_versions


@pytest.mark.parametrize("name", ["penguins", "diabetes"])
def test_retraining_reproduces_committed_artifacts(name: str, tmp_path: Path) -> None:
    # GIVEN the committed artifacts of an example model, built with the pinned library versions
    committed = MODELS_DIR / name
    if not _installed_versions_match(load_manifest(committed)):
        pytest.skip("installed library versions differ from the ones the committed model was built with")
    train = importlib.import_module(f"models.{name}.train")
    # WHEN the training script is re-run into a temporary directory
    train.main(["--out", str(tmp_path)])
    # THEN every artifact is byte-for-byte identical to the committed one
    for artifact in ARTIFACTS:
        assert (tmp_path / artifact).read_bytes() == (committed / artifact).read_bytes(), artifact


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_golden_cases_reproduce_with_onnxruntime(model_dir: Path) -> None:
    # GIVEN a committed model, its manifest and golden set
    manifest = load_manifest(model_dir)
    golden = load_golden(model_dir, manifest)
    sess = ort.InferenceSession(str(model_dir / manifest.model_file), providers=["CPUExecutionProvider"])

    # WHEN each instance is fed as the serving code does (NaN for a missing number, "" for a missing string)
    def cell(value: object, string: bool) -> object:
        return ("" if string else np.nan) if value is None else value

    feeds = {
        i.name: np.array(
            [[cell(c.instance[f], i.dtype == "string") for f in i.features] for c in golden.cases],
            dtype=object if i.dtype == "string" else np.float32,
        )
        for i in manifest.inputs
    }
    out = manifest.output
    # THEN the model reproduces every expected value within the manifest's tolerances
    if out.kind == "classification":
        assert out.probability_tensor is not None
        labels, probabilities = sess.run([out.label_tensor, out.probability_tensor], feeds)
        for case, label, probs in zip(golden.cases, labels, probabilities, strict=True):
            assert case.expected["label"] == label
            expected = case.expected["probabilities"]
            assert isinstance(expected, dict)
            assert [expected[lbl] for lbl in out.labels] == pytest.approx(
                probs.tolist(), abs=manifest.golden.probability_tolerance
            )
    else:
        (values,) = sess.run([out.value_tensor], feeds)
        for case, value in zip(golden.cases, values.reshape(-1), strict=True):
            assert case.expected[out.name] == pytest.approx(float(value), abs=manifest.golden.value_tolerance)
