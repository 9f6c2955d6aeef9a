"""The runtime loads a model all or nothing and the service predicts for any manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onnxlambda.contract.errors import ModelLoadError, ServingError
from onnxlambda.contract.manifest import load_golden, load_manifest
from onnxlambda.serving import service as service_module
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service, get_service, load_error, reset_service
from onnxlambda.settings import Settings


def settings_for(model_dir: Path, max_rows: int = 1000) -> Settings:
    return Settings(
        model_dir=model_dir,
        max_rows=max_rows,
        max_body_bytes=1 << 20,
        max_error_details=100,
        ort_intra_op_threads=1,
    )


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("model", ["penguins", "diabetes"])
def test_same_code_serves_both_models_and_reproduces_their_golden_sets(model: str) -> None:
    # GIVEN two different models (a classifier and a regressor) in their own directories
    model_dir = Path(__file__).resolve().parents[3] / "models" / model
    service = Service.from_settings(settings_for(model_dir))
    golden = load_golden(model_dir, service.manifest)
    # WHEN the golden inputs are predicted by the same service code
    answer = service.predict({"instances": [c.instance for c in golden.cases]}, request_id="req")
    # THEN every output matches the golden set within the manifest's tolerance
    for case, row in zip(golden.cases, answer["predictions"], strict=True):
        for key, expected in case.expected.items():
            if key == "probabilities":
                assert isinstance(expected, dict)
                for label, p in expected.items():
                    assert row[key][label] == pytest.approx(
                        p, abs=service.manifest.golden.probability_tolerance
                    )
            elif isinstance(expected, float):
                assert row[key] == pytest.approx(expected, abs=service.manifest.golden.value_tolerance)
            else:
                assert row[key] == expected
    assert answer["model"]["sha256"] == service.manifest.sha256
    assert answer["predictions"][3]["inference_id"] == "req-3"


def test_tampered_model_is_refused_before_a_session_exists(penguins_dir: Path, tmp_path: Path) -> None:
    # GIVEN a model file whose bytes differ from the manifest's sha256
    model_dir = copy_model(penguins_dir, tmp_path / "m")
    (model_dir / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes() + b"\0")
    # WHEN it is loaded THEN loading fails and says why
    with pytest.raises(ModelLoadError, match="sha256"):
        ModelRuntime.load(model_dir)


def test_truncated_model_with_matching_hash_is_refused_by_onnxruntime(
    penguins_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a corrupt model whose manifest was (wrongly) updated to its hash
    model_dir = copy_model(penguins_dir, tmp_path / "m")
    truncated = (model_dir / "model.onnx").read_bytes()[:200]
    (model_dir / "model.onnx").write_bytes(truncated)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    import hashlib

    manifest["sha256"] = hashlib.sha256(truncated).hexdigest()
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    # THEN onnxruntime's refusal is a ModelLoadError, not a crash
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        ModelRuntime.load(model_dir)


def test_missing_files_are_clear_errors(penguins_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no manifest\.json"):
        ModelRuntime.load(tmp_path)
    model_dir = copy_model(penguins_dir, tmp_path / "m")
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelLoadError, match="cannot read"):
        ModelRuntime.load(model_dir)


def test_manifest_that_does_not_describe_the_model_is_refused(
    penguins_dir: Path, diabetes_dir: Path, tmp_path: Path
) -> None:
    # GIVEN the penguins model paired with the diabetes manifest (hash updated to match)
    model_dir = copy_model(penguins_dir, tmp_path / "m")
    manifest = json.loads((diabetes_dir / "manifest.json").read_text())
    manifest["sha256"] = load_manifest(penguins_dir).sha256
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    # THEN the input signature check refuses it
    with pytest.raises(ModelLoadError, match="does not match its manifest"):
        ModelRuntime.load(model_dir)


def test_a_failed_load_is_kept_and_reported_as_503(tmp_path: Path) -> None:
    # GIVEN an execution environment whose model directory is empty
    reset_service()
    try:
        # WHEN the service is asked for, twice
        for _ in range(2):
            with pytest.raises(ServingError) as info:
                get_service(settings_for(tmp_path))
            # THEN it is a 503 naming the cause, and no half-built service is cached
            assert info.value.status == 503
        assert service_module._service is None
        assert "manifest.json" in (load_error() or "")
    finally:
        reset_service()


def test_service_is_loaded_once_per_environment(penguins_dir: Path) -> None:
    reset_service()
    try:
        first = get_service(settings_for(penguins_dir))
        assert get_service() is first
    finally:
        reset_service()
