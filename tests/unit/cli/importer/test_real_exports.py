"""Real exports, imported and served in process: /predict, V2 and batch scoring answer what
onnxruntime answers on the user's original file.

Each case is a small seeded model trained on bundled data and exported as its library's docs
show (tests/exports.py): skl2onnx with a packed input and a ZipMap, the same without ZipMap, a
ColumnTransformer with a packed numeric input and string inputs, LightGBM and XGBoost through
onnxmltools, a regressor with an [N, 1] output, and an MLflow onnx-flavor directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from onnxlambda.codecs import v2 as v2_codec
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, load_manifest
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import reset_service
from tests.conftest import FakeLambdaContext
from tests.exports import Export
from tests.served import (
    BATCH_KEY,
    assert_same,
    csv_of,
    from_predict,
    from_scored_csv,
    from_v2,
    predict_event,
    s3_event,
    v2_event,
)

CASES = [
    "wine_zipmap",
    "wine_nozipmap",
    "penguins_columntransformer",
    "lightgbm_classifier",
    "xgboost_classifier",
    "linear_regression",
    "labels_3_7_10",
    "mlflow_directory",
]
BUCKET = "imported-batch"


class BatchContext(FakeLambdaContext):
    """A fresh batch invocation: 15 minutes ahead (the shared fake has the API's 10 s)."""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Manifest]]:
    """Point this execution environment at a model directory, as ONNXLAMBDA_MODEL_DIR does on Lambda."""

    def use(model_dir: Path) -> Manifest:
        monkeypatch.setenv("ONNXLAMBDA_MODEL_DIR", str(model_dir))
        reset_service()
        monkeypatch.setattr(v2_codec, "_model", None)
        return load_manifest(model_dir)

    yield use
    reset_service()  # the next test loads ONNXLAMBDA_MODEL_DIR again (restored by monkeypatch)


@pytest.mark.parametrize("case", CASES)
def test_the_served_file_is_the_users_file_and_it_loads_ready(
    case: str, real_export: Callable[[str], Export], imported: Callable[[str], Path]
) -> None:
    # GIVEN a real export WHEN it is imported
    export, model_dir = real_export(case), imported(case)
    # THEN model.onnx is the user's file byte for byte, and the runtime loads it as ready
    # (signature checked against the manifest)
    served = (model_dir / "model.onnx").read_bytes()
    assert hashlib.sha256(served).digest() == hashlib.sha256(export.onnx_file.read_bytes()).digest()
    runtime = ModelRuntime.load(model_dir)
    assert runtime.manifest.sha256 == hashlib.sha256(served).hexdigest()
    # AND the features are the data's columns, under their own names, in the user's order
    assert runtime.manifest.feature_names == export.features


@pytest.mark.parametrize("case", CASES)
def test_predict_answers_what_onnxruntime_answers_on_the_original_file(
    case: str,
    real_export: Callable[[str], Export],
    imported: Callable[[str], Path],
    serve: Callable[[Path], Manifest],
    lambda_context: FakeLambdaContext,
) -> None:
    from functions.api import app

    # GIVEN the imported model served in process, and the held-out rows (nulls included)
    export = real_export(case)
    manifest = serve(imported(case))
    rows = export.rows("test")
    # WHEN they are sent to POST /predict
    response = app.lambda_handler(predict_event(rows), lambda_context)
    # THEN labels, probabilities and values are onnxruntime's on the user's file
    assert_same(from_predict(response, manifest), export.oracle(rows), "/predict")


@pytest.mark.parametrize("case", CASES)
def test_v2_infer_with_the_models_own_tensors_answers_what_onnxruntime_answers(
    case: str,
    real_export: Callable[[str], Export],
    imported: Callable[[str], Path],
    serve: Callable[[Path], Manifest],
    lambda_context: FakeLambdaContext,
) -> None:
    from functions.api import app

    # GIVEN the imported model served in process
    export = real_export(case)
    manifest = serve(imported(case))
    rows = export.rows("test")
    # WHEN the user's own tensors (e.g. float_input [N, 13]) go to POST /v2/models/<name>/infer
    response = app.lambda_handler(v2_event(export, rows), lambda_context)
    # THEN the answer is onnxruntime's on the user's file, in the manifest's vocabulary
    assert_same(from_v2(response, manifest), export.oracle(rows), "V2")


@pytest.mark.parametrize("case", CASES)
def test_batch_scoring_answers_what_onnxruntime_answers(
    case: str,
    real_export: Callable[[str], Export],
    imported: Callable[[str], Path],
    serve: Callable[[Path], Manifest],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.batch import app, environment

    # GIVEN the imported model and a CSV of the held-out rows under the input prefix (moto S3)
    export = real_export(case)
    manifest = serve(imported(case))
    rows = export.rows("test")
    data = csv_of(rows, export.features)
    with mock_aws():
        s3: Any = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        monkeypatch.setattr(environment, "_s3", s3)
        s3.put_object(Bucket=BUCKET, Key=BATCH_KEY, Body=data)
        # WHEN the S3 event reaches the batch function
        result = app.lambda_handler(s3_event(BUCKET, BATCH_KEY, len(data)), BatchContext())
        [one] = result["results"]
        summary = json.loads(s3.get_object(Bucket=BUCKET, Key=one["summary"])["Body"].read())
        scored = s3.get_object(Bucket=BUCKET, Key=summary["output"]["scored"])["Body"].read()
    # THEN every row is scored, with onnxruntime's answers
    assert one["rows"] == {"read": len(rows), "scored": len(rows), "rejected": 0}
    assert_same(from_scored_csv(scored, manifest), export.oracle(rows), "batch")


def test_int64_labels_are_served_under_the_given_class_names_in_the_models_order(
    imported: Callable[[str], Path], real_export: Callable[[str], Export]
) -> None:
    # GIVEN the skl2onnx wine export (int64 labels 0, 1, 2 in a ZipMap) imported with names
    manifest = load_manifest(imported("wine_zipmap"))
    # THEN the manifest maps each name to the graph's class value, in the graph's order
    out = manifest.output
    assert isinstance(out, ClassificationOutput)
    assert (out.labels, out.class_values, out.probability_format) == (
        ["class_0", "class_1", "class_2"],
        [0, 1, 2],
        "zipmap",
    )
    # AND the feature with a slash in its name is served under that name, in the packed input
    assert "od280/od315_of_diluted_wines" in manifest.inputs[0].features
    assert [i.name for i in manifest.inputs] == ["float_input"]
