"""Imported real exports served by the built functions under the Lambda emulator.

The `sam build` output (function code + core layer), run by the real Lambda runtime interface
(RIE + awslambdaric, the .venv-runtime interpreter), with ONNXLAMBDA_MODEL_DIR pointing at the directory
`onnxlambda import` wrote: /predict, V2 and batch scoring (moto's S3 in server mode) answer what
onnxruntime answers on the user's original file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.motoserver import function_env, moto_s3
from devtools.rie import BuiltFunction, EmulatedFunction
from onnxlambda.contract.manifest import load_manifest
from tests.conftest import load_event
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

# One per family of export: skl2onnx packed + ZipMap, ColumnTransformer with string inputs,
# LightGBM (label declared [1], NaN handled), an MLflow directory, a regressor.
EMULATED = [
    "wine_zipmap",
    "penguins_columntransformer",
    "lightgbm_classifier",
    "mlflow_directory",
    "linear_regression",
]
BUCKET = load_event("s3_put_csv")["Records"][0]["s3"]["bucket"]["name"]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[tuple[str, Any]]:
    with moto_s3(BUCKET) as server:
        yield server


@pytest.mark.parametrize("case", EMULATED)
def test_the_built_api_function_serves_an_imported_export_like_onnxruntime(
    case: str, real_export: Callable[[str], Export], imported: Callable[[str], Path], build_dir: Path
) -> None:
    # GIVEN the built API function with ONNXLAMBDA_MODEL_DIR at the imported directory, under the emulator
    export, model_dir = real_export(case), imported(case)
    manifest = load_manifest(model_dir)
    rows = export.rows("test")
    function = BuiltFunction.from_build("ApiFunction", build_dir)
    with EmulatedFunction(function, extra_env={"ONNXLAMBDA_MODEL_DIR": str(model_dir)}) as api:
        # WHEN it is health-checked, then sent the held-out rows by /predict and by V2
        health = api.invoke(load_event("api_health"))
        predicted = api.invoke(predict_event(rows))
        v2 = api.invoke(v2_event(export, rows))
    # THEN it is ready with the user's bytes, and both protocols answer as onnxruntime does
    assert health["statusCode"] == 200
    assert json.loads(health["body"])["model"]["sha256"] == manifest.sha256
    oracle = export.oracle(rows)
    assert_same(from_predict(predicted, manifest), oracle, "/predict (emulated)")
    assert_same(from_v2(v2, manifest), oracle, "V2 (emulated)")


@pytest.mark.parametrize("case", EMULATED)
def test_the_built_batch_function_scores_an_imported_export_like_onnxruntime(
    case: str,
    real_export: Callable[[str], Export],
    imported: Callable[[str], Path],
    build_dir: Path,
    s3_server: tuple[str, Any],
) -> None:
    # GIVEN the built batch function with ONNXLAMBDA_MODEL_DIR at the imported directory, and moto's S3
    endpoint, s3 = s3_server
    export, model_dir = real_export(case), imported(case)
    manifest = load_manifest(model_dir)
    rows = export.rows("test")
    data = csv_of(rows, export.features)
    key = BATCH_KEY.replace(".csv", f"-{case}.csv")
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    function = BuiltFunction.from_build("BatchFunction", build_dir)
    env = function_env(
        endpoint, ONNXLAMBDA_MODEL_DIR=str(model_dir), ONNXLAMBDA_BATCH_PART_BYTES=str(5 * 1024 * 1024)
    )
    # WHEN the S3 put event reaches it
    with EmulatedFunction(function, extra_env=env) as batch:
        answer = batch.invoke(s3_event(BUCKET, key, len(data)), timeout=300)
    # THEN every row is scored, with onnxruntime's answers
    assert "errorMessage" not in answer, answer
    [result] = answer["results"]
    assert result["rows"] == {"read": len(rows), "scored": len(rows), "rejected": 0}
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=result["summary"])["Body"].read())
    scored = s3.get_object(Bucket=BUCKET, Key=summary["output"]["scored"])["Body"].read()
    assert_same(from_scored_csv(scored, manifest), export.oracle(rows), "batch (emulated)")
