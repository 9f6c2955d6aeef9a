"""The shadow challenger in the core: sampling, agreement, refusals, the budget, and failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnxlambda.codecs import predict as predict_codec
from onnxlambda.contract.redaction import Redactor
from onnxlambda.monitoring import metrics as names
from onnxlambda.release.shadow import Challenger, ShadowSettings, load_challenger, pick
from onnxlambda.serving.dataplane import DataPlane, Decoded, Inference
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.validation import Validator
from tests.conftest import MODELS, ROOT, golden_rows
from tests.unit.release.candidates import scale_tree_outputs, swap_classes, write_candidate


def champion_inference(model: str, rows: list[dict[str, Any]]) -> tuple[Inference, Decoded]:
    runtime = ModelRuntime.load(MODELS / model)
    plane = DataPlane(runtime, Validator(runtime.manifest, max_rows=1000), Redactor(frozenset()))
    request = predict_codec.decode({"instances": rows})
    return plane.infer(request, request_id="req"), request


def challenger(model_dir: Path, champion: str = "penguins", **settings: Any) -> Challenger:
    config = ShadowSettings(sample_rate=1.0, challenger_dir=model_dir, **settings)
    loaded = Challenger.load(config, ModelRuntime.load(MODELS / champion).manifest)
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return golden_rows(MODELS / "penguins")


def test_samples_are_nested_so_captured_rows_carry_the_shadow() -> None:
    rng = np.random.default_rng(1)
    # GIVEN capture at 10% and the shadow at 100% THEN every captured row is shadowed
    captured, shadowed = pick(1000, 0.1, 1.0, rng)
    assert shadowed == list(range(1000))
    assert 50 < len(captured) < 150
    # GIVEN the shadow below the capture rate THEN the shadowed rows are a subset of the captured ones
    captured, shadowed = pick(1000, 0.5, 0.2, rng)
    assert set(shadowed) <= set(captured)
    assert 100 < len(shadowed) < 300
    assert pick(5, 0.0, 0.0, rng) == ([], [])


def test_a_flipped_challenger_disagrees_and_says_so_per_row(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN the champion's answers and a challenger with the Adelie and Gentoo weights swapped
    inference, request = champion_inference("penguins", rows)
    flipped = challenger(
        write_candidate("penguins", tmp_path / "c", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    # WHEN it scores every row
    outcome = flipped.score(inference, request, range(len(rows)))
    # THEN each row's capture field names the challenger and holds its answer and the agreement
    champion_labels = [a["label"] for a in inference.answers()]
    assert outcome.scored == len(rows)
    for i, label in enumerate(champion_labels):
        shadow = outcome.per_row[i]["shadow"]
        assert shadow["model_version"] == "1.0.1"
        assert shadow["model_sha256"] == flipped.manifest.sha256
        assert shadow["agree"] is (shadow["prediction"]["label"] == label)
    # AND Adelie and Gentoo answers flip, Chinstrap ones stay: the counts say how many
    flips = sum(1 for label in champion_labels if label != "Chinstrap")
    assert outcome.disagreed == flips > 0
    values = outcome.metrics()
    assert values[names.SHADOW_ROWS] == ("Count", float(len(rows)))
    assert values[names.SHADOW_DISAGREEMENTS] == ("Count", float(flips))
    assert values[names.SHADOW_TIME][0] == "Milliseconds"
    assert names.SHADOW_REFUSED not in values  # zeros are not sent


def test_the_same_model_agrees_everywhere(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    inference, request = champion_inference("penguins", rows)
    same = challenger(write_candidate("penguins", tmp_path / "same", version="1.0.1"))
    outcome = same.score(inference, request, range(len(rows)))
    assert (outcome.scored, outcome.disagreed) == (len(rows), 0)
    assert all(
        f["shadow"]["prediction"] == a
        for f, a in zip(outcome.per_row.values(), inference.answers(), strict=True)
    )


def test_rows_the_challenger_would_refuse_are_recorded_with_their_codes(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN a challenger whose contract drops island=Torgersen
    def drop(m: dict[str, Any]) -> None:
        next(f for f in m["features"] if f["name"] == "island")["categories"] = ["Biscoe", "Dream"]

    strict = challenger(write_candidate("penguins", tmp_path / "c", version="2.0.0", manifest_edit=drop))
    inference, request = champion_inference("penguins", rows)
    outcome = strict.score(inference, request, range(len(rows)))
    # THEN each Torgersen row is a refusal (what a caller would get from it), the rest are scored
    torgersen = [i for i, r in enumerate(rows) if r["island"] == "Torgersen"]
    assert torgersen
    assert outcome.refused == len(torgersen)
    assert all(outcome.per_row[i]["shadow"]["refused"] == ["unknown_category"] for i in torgersen)
    assert outcome.scored == len(rows) - len(torgersen)
    assert outcome.metrics()[names.SHADOW_REFUSED] == ("Count", float(len(torgersen)))


def test_the_budget_bounds_the_rows_scored_per_request(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    same_dir = write_candidate("penguins", tmp_path / "same", version="1.0.1")
    inference, request = champion_inference("penguins", rows)
    # GIVEN at most 3 rows per request THEN 3 are scored and the rest counted as skipped
    capped = challenger(same_dir, max_rows=3).score(inference, request, range(len(rows)))
    assert (capped.scored, capped.skipped) == (3, len(rows) - 3)
    assert capped.metrics()[names.SHADOW_SKIPPED] == ("Count", float(len(rows) - 3))
    # GIVEN a budget far below one row's measured cost THEN after the first request one row is scored
    tight = challenger(same_dir, budget_ms=1e-6)
    first = tight.score(inference, request, range(len(rows)))
    second = tight.score(inference, request, range(len(rows)))
    assert first.scored == len(rows)  # nothing measured yet
    assert (second.scored, second.skipped) == (1, len(rows) - 1)


def test_a_failing_challenger_is_counted_never_raised(
    rows: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = challenger(write_candidate("penguins", tmp_path / "c", version="1.0.1"))

    def explode(*args: object) -> None:
        raise RuntimeError("onnxruntime went away")

    monkeypatch.setattr(broken.runtime, "run", explode)
    inference, request = champion_inference("penguins", rows)
    outcome = broken.score(inference, request, range(len(rows)))
    assert (outcome.errors, outcome.scored, outcome.per_row) == (1, 0, {})
    assert outcome.metrics()[names.SHADOW_ERRORS] == ("Count", 1.0)


def test_regression_disagrees_beyond_the_tolerance(tmp_path: Path) -> None:
    # GIVEN diabetes and a challenger whose predictions are all 10% higher
    rows = golden_rows(MODELS / "diabetes")
    inference, request = champion_inference("diabetes", rows)
    scaled = write_candidate("diabetes", tmp_path / "c", version="1.0.1", graph_edit=scale_tree_outputs(1.1))
    values = [a["disease_progression"] for a in inference.answers()]
    # WHEN the tolerance is 15 THEN exactly the rows whose 10% exceeds 15 disagree
    outcome = challenger(scaled, "diabetes", value_tolerance=15.0).score(inference, request, range(len(rows)))
    assert outcome.disagreed == sum(1 for v in values if abs(0.1 * v) > 15.0 + 1e-6)
    assert 0 < outcome.disagreed < len(rows)
    # AND by default the tolerance is a tenth of the baseline's spread
    default = challenger(scaled, "diabetes")
    std = ModelRuntime.load(MODELS / "diabetes").manifest.baselines.output.std_dev  # type: ignore[union-attr]
    assert default.score(inference, request, range(len(rows))).disagreed == sum(
        1 for v in values if abs(0.1 * v) > 0.1 * std + 1e-6
    )


def test_v2_columns_are_shadowed_like_rows(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    # GIVEN a V2 request (columns, not row objects)
    runtime = ModelRuntime.load(MODELS / "penguins")
    plane = DataPlane(runtime, Validator(runtime.manifest, max_rows=1000), Redactor(frozenset()))
    columns = {f: [r[f] for r in rows] for f in runtime.manifest.feature_names}
    request = Decoded(protocol="v2", columns=columns)
    inference = plane.infer(request, request_id="v2")
    flipped = challenger(
        write_candidate("penguins", tmp_path / "c", version="1.0.1", graph_edit=swap_classes(0, 2))
    )
    outcome = flipped.score(inference, request, range(len(rows)))
    assert outcome.scored == len(rows)
    assert outcome.disagreed == sum(1 for a in inference.answers() if a["label"] != "Chinstrap")


def test_loading_says_why_there_is_no_challenger(tmp_path: Path) -> None:
    champion = ModelRuntime.load(MODELS / "penguins").manifest
    off = load_challenger(ShadowSettings(sample_rate=0.0, challenger_dir=MODELS / "penguins"), champion)
    assert off == (None, "ONNXLAMBDA_SHADOW_SAMPLE_RATE is 0")
    (tmp_path / "NONE").write_text("no challenger")
    empty = load_challenger(ShadowSettings(sample_rate=1.0, challenger_dir=tmp_path), champion)
    assert empty == (None, f"no challenger model in {tmp_path}")
    # GIVEN a challenger whose bytes are not the ones its manifest names THEN it is refused, not served
    tampered = write_candidate("penguins", tmp_path / "t", version="1.0.1")
    with (tampered / "model.onnx").open("ab") as f:
        f.write(b"\0")
    loaded, why = load_challenger(ShadowSettings(sample_rate=1.0, challenger_dir=tampered), champion)
    assert loaded is None
    assert why is not None
    assert why.startswith("challenger not loaded: sha256 of")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXLAMBDA_SHADOW_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("ONNXLAMBDA_CHALLENGER_DIR", "/x")
    monkeypatch.setenv("ONNXLAMBDA_SHADOW_BUDGET_MS", "2.5")
    settings = ShadowSettings.from_env()
    assert (settings.sample_rate, settings.challenger_dir, settings.budget_ms) == (0.25, Path("/x"), 2.5)
    monkeypatch.setenv("ONNXLAMBDA_SHADOW_SAMPLE_RATE", "2")
    with pytest.raises(ValueError, match="ONNXLAMBDA_SHADOW_SAMPLE_RATE"):
        ShadowSettings.from_env()


def build_layer(models: Path, out: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """The layer's Makefile run as `sam build` runs it: in a copy of models/, no CHALLENGER in the env."""
    env = {k: v for k, v in os.environ.items() if k != "CHALLENGER"}
    return subprocess.run(
        ["make", "-s", "-f", str(ROOT / "layers" / "challenger" / "Makefile"), "build-ChallengerLayer",
         f"ARTIFACTS_DIR={out}", "PYTHON=python3", *(f"{k}={v}" for k, v in variables.items())],
        cwd=models, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("selected", ["", "penguins"])
def test_the_challenger_layer_builds_what_models_challenger_names(tmp_path: Path, selected: str) -> None:
    # GIVEN a copy of models/ whose .challenger file (written by `make build`) names the challenger
    models = tmp_path / "models"
    shutil.copytree(MODELS / "penguins", models / "penguins")
    (models / ".challenger").write_text(selected + "\n")
    # WHEN the layer is built
    build = build_layer(models, tmp_path / "out")
    assert build.returncode == 0, build.stderr
    built = sorted(p.name for p in (tmp_path / "out" / "challenger").iterdir())
    if not selected:
        # THEN without a challenger the layer holds only the marker
        assert built == ["NONE"]
        return
    # THEN with one it holds its model and manifest, the sha256 matching
    assert built == ["manifest.json", "model.onnx"]
    manifest = json.loads((tmp_path / "out" / "challenger" / "manifest.json").read_text())
    assert (
        hashlib.sha256((tmp_path / "out" / "challenger" / "model.onnx").read_bytes()).hexdigest()
        == manifest["sha256"]
    )


def test_the_challenger_layer_build_refuses_bytes_its_manifest_does_not_name(tmp_path: Path) -> None:
    # GIVEN a challenger directory whose model.onnx was changed after its manifest was written
    models = tmp_path / "models"
    bad = write_candidate("penguins", models / "bad", version="1.0.1")
    with (bad / "model.onnx").open("ab") as f:
        f.write(b"\0")
    # WHEN the layer is built (named by the variable this time) THEN the build fails, naming the mismatch
    build = build_layer(models, tmp_path / "out", CHALLENGER="bad")
    assert build.returncode != 0
    assert "challenger model.onnx sha256" in build.stderr
