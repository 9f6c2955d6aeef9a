"""The runtime around the user's graph: packed and per-feature inputs, ZipMap / tensor / label-less
outputs, int64 and string classes, and the load check that refuses a misdescribed model.

Every model here is a real scikit-learn export made the way skl2onnx documents it; the manifests
are written by hand on purpose, to describe each graph correctly or in one specific wrong way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import MANIFEST_FILE, Manifest, ManifestError
from onnxlambda.contract.strict import build
from onnxlambda.serving.runtime import ModelRuntime, sha256_file

WINE = load_wine(as_frame=True)
WINE_X = WINE.data.to_numpy(dtype=np.float32)
WINE_COLUMNS = list(WINE.data.columns)  # includes "od280/od315_of_diluted_wines"
_NUMERIC = {"kind": "numeric", "count": 1, "missing": 0, "mean": 0.0, "std_dev": 0.0, "min": 0.0,
            "max": 0.0, "cut_points": [], "counts": [1]}  # fmt: skip


def export(model: Any, width: int, name: str = "float_input", **options: Any) -> bytes:
    onx = convert_sklearn(model, initial_types=[(name, FloatTensorType([None, width]))], **options)
    return bytes(onx.SerializeToString())


def manifest_dict(
    model_bytes: bytes, features: list[str], output: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    import hashlib

    return {
        "name": "m",
        "version": "1.0.0",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "features": [{"name": f, "dtype": "float32"} for f in features],
        "inputs": [{"name": "float_input", "dtype": "float32", "features": features}],
        "output": output,
        "training": {
            "dataset": "d",
            "source": "s",
            "fingerprint_sha256": "0" * 64,
            "rows": 1,
            "train_rows": 1,
            "test_rows": 0,
        },
        "lineage": {"kind": "imported", "created_at": "2026-01-01T00:00:00Z"},
        "baselines": {"features": dict.fromkeys(features, _NUMERIC), "output": _NUMERIC},
        **extra,
    }


def model_dir(tmp_path: Path, model_bytes: bytes, manifest: dict[str, Any]) -> Path:
    (tmp_path / "model.onnx").write_bytes(model_bytes)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    return tmp_path


def onnxruntime_outputs(model_bytes: bytes, x: np.ndarray[Any, Any]) -> list[Any]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return list(session.run(None, {session.get_inputs()[0].name: x}))


def columns(x: np.ndarray[Any, Any], names: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    return {n: x[:, j] for j, n in enumerate(names)}


NO_ZIPMAP = {LogisticRegression: {"zipmap": False}}


def classifier() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))


@pytest.fixture(scope="module")
def wine_zipmap() -> bytes:
    return export(classifier().fit(WINE_X, WINE.target), 13)


CLASSES = ["class_0", "class_1", "class_2"]
ZIPMAP_OUTPUT = {"kind": "classification", "label_tensor": "output_label", "probability_tensor":
                 "output_probability", "probability_format": "zipmap", "labels": CLASSES,
                 "class_values": [0, 1, 2]}  # fmt: skip


def test_a_packed_zipmap_export_answers_what_onnxruntime_answers(wine_zipmap: bytes, tmp_path: Path) -> None:
    # GIVEN the default skl2onnx export of a pipeline: one [N, 13] input, int64 labels, a ZipMap
    runtime = ModelRuntime.load(
        model_dir(tmp_path, wine_zipmap, manifest_dict(wine_zipmap, WINE_COLUMNS, ZIPMAP_OUTPUT))
    )
    # WHEN rows are run as validated columns keyed by the data's own column names
    prediction = runtime.run(columns(WINE_X[:40], WINE_COLUMNS), 40)
    # THEN labels are the class names of onnxruntime's labels, probabilities its ZipMap in class order
    labels, zipmap = onnxruntime_outputs(wine_zipmap, WINE_X[:40])
    assert prediction.labels == [CLASSES[i] for i in labels]
    assert prediction.probabilities is not None
    expected = np.array([[row[k] for k in (0, 1, 2)] for row in zipmap], dtype=np.float32)
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
    # AND the served file is the user's bytes
    assert sha256_file(tmp_path / "model.onnx") == runtime.manifest.sha256


def test_a_zipmap_the_manifest_does_not_declare_is_a_load_error(wine_zipmap: bytes, tmp_path: Path) -> None:
    # GIVEN a manifest that calls the ZipMap a [N, C] tensor
    output = {**ZIPMAP_OUTPUT, "probability_format": "tensor"}
    # WHEN loaded THEN refused, saying what the output really is
    with pytest.raises(ModelLoadError, match=r"it is a ZipMap: probability_format 'zipmap'"):
        ModelRuntime.load(model_dir(tmp_path, wine_zipmap, manifest_dict(wine_zipmap, WINE_COLUMNS, output)))


def test_a_width_mismatch_is_a_load_error(wine_zipmap: bytes, tmp_path: Path) -> None:
    # GIVEN a manifest placing 12 features in the 13-wide input
    manifest = manifest_dict(wine_zipmap, WINE_COLUMNS[:12], ZIPMAP_OUTPUT)
    # THEN the load check names both widths
    with pytest.raises(
        ModelLoadError, match=r"input 'float_input' is 13 wide in the graph; the manifest places 12"
    ):
        ModelRuntime.load(model_dir(tmp_path, wine_zipmap, manifest))


def test_int64_labels_need_class_values(wine_zipmap: bytes, tmp_path: Path) -> None:
    # GIVEN string class names but no class_values for an int64 label output
    output = {k: v for k, v in ZIPMAP_OUTPUT.items() if k != "class_values"}
    with pytest.raises(
        ModelLoadError, match=r"is tensor\(int64\); the manifest's labels need tensor\(string\)"
    ):
        ModelRuntime.load(model_dir(tmp_path, wine_zipmap, manifest_dict(wine_zipmap, WINE_COLUMNS, output)))


def test_a_feature_in_two_inputs_or_in_none_is_refused_by_the_manifest(wine_zipmap: bytes) -> None:
    data = manifest_dict(wine_zipmap, WINE_COLUMNS, ZIPMAP_OUTPUT)
    twice = {
        **data,
        "inputs": [*data["inputs"], {"name": "again", "dtype": "float32", "features": ["alcohol"]}],
    }
    with pytest.raises(ManifestError, match=r"feature 'alcohol' is in inputs 'float_input' and 'again'"):
        build(Manifest, twice)
    nowhere = {**data, "inputs": [{"name": "float_input", "dtype": "float32", "features": WINE_COLUMNS[1:]}]}
    with pytest.raises(ManifestError, match=r"features in no model input: \['alcohol'\]"):
        build(Manifest, nowhere)


def test_sparse_int_classes_and_a_probability_tensor_are_read_in_the_models_order(tmp_path: Path) -> None:
    # GIVEN labels 10, 3, 7 (sorted by the classifier to 3, 7, 10) and zipmap False
    y = np.array([10, 3, 7])[WINE.target.to_numpy()]
    model = export(classifier().fit(WINE_X, y), 13, options=NO_ZIPMAP)
    output = {"kind": "classification", "label_tensor": "label", "probability_tensor": "probabilities",
              "labels": ["three", "seven", "ten"], "class_values": [3, 7, 10]}  # fmt: skip
    runtime = ModelRuntime.load(model_dir(tmp_path, model, manifest_dict(model, WINE_COLUMNS, output)))
    prediction = runtime.run(columns(WINE_X, WINE_COLUMNS), len(WINE_X))
    # THEN each label is the name of onnxruntime's label, and the probabilities are its tensor
    labels, probabilities = onnxruntime_outputs(model, WINE_X)
    names = {3: "three", 7: "seven", 10: "ten"}
    assert prediction.labels == [names[int(v)] for v in labels]
    np.testing.assert_allclose(prediction.probabilities, probabilities, atol=1e-6)  # type: ignore[arg-type]


def test_without_a_label_tensor_the_label_is_the_most_probable_class(tmp_path: Path) -> None:
    model = export(classifier().fit(WINE_X, WINE.target), 13, options=NO_ZIPMAP)
    output = {"kind": "classification", "label_tensor": None, "probability_tensor": "probabilities",
              "labels": CLASSES, "class_values": [0, 1, 2]}  # fmt: skip
    runtime = ModelRuntime.load(model_dir(tmp_path, model, manifest_dict(model, WINE_COLUMNS, output)))
    prediction = runtime.run(columns(WINE_X, WINE_COLUMNS), len(WINE_X))
    labels, _ = onnxruntime_outputs(model, WINE_X)
    assert prediction.labels == [CLASSES[int(v)] for v in labels]


def test_an_n_by_1_regression_output_is_one_value_per_row(tmp_path: Path) -> None:
    # GIVEN a LinearRegression exported with one packed [N, 10] input: its output is [N, 1]
    data = load_diabetes(as_frame=True)
    x = data.data.to_numpy(dtype=np.float32)
    names = list(data.data.columns)
    model = export(LinearRegression().fit(x, data.target), 10)
    output = {"kind": "regression", "value_tensor": "variable", "name": "progression"}
    runtime = ModelRuntime.load(model_dir(tmp_path, model, manifest_dict(model, names, output)))
    # WHEN run THEN N values equal onnxruntime's [N, 1]
    prediction = runtime.run(columns(x, names), len(x))
    (expected,) = onnxruntime_outputs(model, x)
    assert expected.shape == (len(x), 1)
    np.testing.assert_allclose(prediction.values, expected.reshape(-1), rtol=1e-6)  # type: ignore[arg-type]
