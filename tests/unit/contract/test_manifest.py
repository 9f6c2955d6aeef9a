"""The manifest contract is checked by plain dataclasses (no pydantic on the API function's path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import (
    CategoricalBaseline,
    Feature,
    ManifestError,
    NumericBaseline,
    as_json,
    dump_json,
    load_golden,
    load_manifest,
)
from onnxlambda.serving.runtime import ModelRuntime
from tests.conftest import ROOT

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(key: str) -> Edit:
    return lambda doc: doc.pop(key)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("name", "Penguins!"), r"name: 'Penguins!' does not match"),
        (_set("version", "1.0"), r"version: '1.0' does not match"),
        (_set("sha256", "ABC"), r"sha256: 'ABC' does not match"),
        (_set("schema_version", 3), r"schema_version: must be one of 2, got 3"),
        (_set("extra_fields", "drop"), r"extra_fields: must be one of 'reject', 'ignore'"),
        (_set("output.kind", "ranking"), r"output: kind must be one of 'classification', 'regression'"),
        (_set("features.0.dtype", "float16"), r"features\.0\.dtype: must be one of"),
        (_set("features.0.name", " padded"), r"features\.0\.name: . padded. does not match"),
        (_set("features.1.categories", ["x"]), r"features\.1: numeric feature .* cannot have categories"),
        (_set("features.1.minimum", "low"), r"features\.1\.minimum: must be float"),
        (_set("features.0.minimum", 1), r"features\.0: string feature 'island' cannot have a numeric range"),
        (_set("features.0.nullable", 1), r"features\.0\.nullable: must be bool"),
        (_set("training.rows", 1.5), r"training\.rows: must be int"),
        (_set("baselines.output.kind", "other"), r"baselines\.output: kind must be one of"),
        (_set("primary_metric", "auc"), r"primary_metric 'auc' is not among metrics"),
        (_set("features", []), r"features must be non-empty and uniquely named"),
        (_set("surprise", 1), r"surprise: unknown field"),
        (_drop("sha256"), r"sha256: field required"),
        (_set("features.0.unit", "mm"), r"features\.0\.unit: unknown field"),
    ],
)
def test_a_manifest_breaking_the_contract_is_a_clear_load_error(
    penguins_dir: Path, tmp_path: Path, edit: Edit, message: str
) -> None:
    # GIVEN the penguins model with one rule of its manifest broken
    doc = json.loads((penguins_dir / "manifest.json").read_text())
    edit(doc)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    (tmp_path / "model.onnx").write_bytes((penguins_dir / "model.onnx").read_bytes())
    # WHEN the runtime loads it THEN it refuses with a message that names the field and the rule
    with pytest.raises(ModelLoadError, match=r"manifest\.json in .* is invalid: .*" + message):
        ModelRuntime.load(tmp_path)


def test_unparseable_manifest_is_a_clear_load_error(penguins_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"manifest\.json in .* is invalid"):
        ModelRuntime.load(tmp_path)


def test_baseline_bin_rules_hold_when_built_in_code() -> None:
    # GIVEN/WHEN baselines built by code (the training scripts) THEN the bin rule is enforced
    with pytest.raises(ManifestError, match=r"counts must have len\(cut_points\) \+ 1 entries"):
        NumericBaseline(count=3, missing=0, mean=1, std_dev=0, min=1, max=1, cut_points=[1.0], counts=[3])
    with pytest.raises(ManifestError, match="strictly increasing"):
        NumericBaseline(
            count=3, missing=0, mean=1, std_dev=0, min=1, max=1, cut_points=[2.0, 1.0], counts=[1, 1, 1]
        )
    # AND ints given for float fields are widened, as the committed JSON has them
    ok = NumericBaseline(count=3, missing=0, mean=1, std_dev=0, min=1, max=1, cut_points=[1], counts=[1, 2])
    assert as_json(ok)["mean"] == 1.0
    assert isinstance(ok.cut_points[0], float)
    assert CategoricalBaseline(count=1, missing=0, counts={"a": 1}).kind == "categorical"
    with pytest.raises(ManifestError, match="string feature 'island' needs a non-empty categories list"):
        Feature(name="island", dtype="string")


@pytest.mark.parametrize("model", sorted(p.parent.name for p in (ROOT / "models").glob("*/manifest.json")))
def test_committed_artifacts_round_trip_byte_for_byte(model: str) -> None:
    # GIVEN a committed model WHEN its manifest and golden set are loaded and dumped again
    model_dir = ROOT / "models" / model
    manifest = load_manifest(model_dir)
    golden = load_golden(model_dir, manifest)
    # THEN the bytes are those committed (the training scripts write them the same way)
    assert dump_json(as_json(manifest)) == (model_dir / "manifest.json").read_text(encoding="utf-8")
    assert dump_json(as_json(golden)) == (model_dir / "golden.json").read_text(encoding="utf-8")
    # AND GET /model's body is the manifest without its baselines, in field order
    public = manifest.public()
    assert "baselines" not in public
    assert list(public)[:3] == ["schema_version", "name", "version"]


def test_loading_a_model_does_not_import_pydantic(penguins_dir: Path) -> None:
    # GIVEN a fresh interpreter WHEN the runtime loads a model (what the API function does at init)
    code = (
        "import sys; from pathlib import Path; from onnxlambda.serving.runtime import ModelRuntime\n"
        f"ModelRuntime.load(Path({str(penguins_dir)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # THEN pydantic (~90 ms of imports) was never loaded
    assert out.stdout.strip() == "[]"
