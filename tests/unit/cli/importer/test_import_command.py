"""`onnxlambda import`: what it derives from real exports, and the exact error for each misuse.

Misuse is answered with exit status 2 and one line on stderr naming what is wrong and how to fix
it, and nothing is written.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from onnxlambda.contract.errors import ServingError
from onnxlambda.contract.manifest import ClassificationOutput, load_golden, load_manifest
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from onnxlambda_cli.importer import ImportInputError, command, default_name
from onnxlambda_cli.importer.graph import SUPPORTED_OUTPUTS
from tests.exports import Export

PREFIX = "onnxlambda import: error: "


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = command.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refusal(args: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    """The one-line error of a refused import (and a check that it wrote nothing)."""
    capsys.readouterr()  # whatever building the export printed
    code, stdout, stderr = run([*args, "--out", str(out)], capsys)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith(PREFIX), stderr
    assert stderr.endswith("\n")
    assert stderr.count("\n") == 1, stderr
    assert not out.exists()
    return stderr[len(PREFIX) : -1]


def header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


# -- misuse: the exact errors -----------------------------------------------------------------------


def test_data_wider_than_the_model_names_both_counts_and_the_columns(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the packed [N, 13] wine export and its reference CSV, target column included
    export = real_export("wine_zipmap")
    columns = header(export.reference)
    # WHEN it is imported without --target THEN the 14 columns are refused for 13 inputs
    message = refusal([str(export.source), "--data", str(export.reference)], capsys, tmp_path / "m")
    assert message == (
        "the model's inputs take 13 values per row ('float_input' tensor(float) [N, 13]) but reference.csv "
        f"gives 14 feature columns: {', '.join(columns)}. Pass --features with the columns the model was "
        "trained on, in its order (and --target for the label column)"
    )


def test_a_text_column_placed_in_a_float_tensor_is_refused_with_its_line_and_value(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the LightGBM export (one packed float input [N, 4]) and penguin data whose --features
    # put the island column among the measurements
    model = real_export("lightgbm_classifier").source
    data = real_export("penguins_columntransformer").reference
    features = ["bill_length_mm", "island", "bill_depth_mm", "body_mass_g"]
    with data.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    # WHEN it is imported THEN the first text value is named, with its line and where it would go
    message = refusal(
        [str(model), "--data", str(data), "--target", "species", "--features", *features],
        capsys,
        tmp_path / "m",
    )
    assert message == (
        f"reference.csv line 2: column 'island' feeds the float32 input 'input' (column 1 of 4), so it must "
        f"hold a number or an empty cell, got {first['island']!r} (check --features and the column order)"
    )


def test_a_number_written_with_a_decimal_comma_is_refused_with_its_line(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the wine reference data with one value written the European way on its 4th row
    export = real_export("wine_zipmap")
    lines = export.reference.read_text().splitlines()
    cells = lines[4].split(",")
    cells[0] = '"' + cells[0].replace(".", ",") + '"'
    lines[4] = ",".join(cells)
    data = tmp_path / "reference.csv"
    data.write_text("\n".join(lines) + "\n")
    # WHEN it is imported THEN line 5 and the cell are named
    message = refusal([str(export.source), "--data", str(data), "--target", "target"], capsys, tmp_path / "m")
    assert message == (
        f"reference.csv line 5: column 'alcohol' feeds the float32 input 'float_input' (column 0 of 13), so "
        f"it must hold a number or an empty cell, got {cells[0].strip(chr(34))!r} (check --features and the "
        "column order)"
    )


def test_a_graph_onnxruntime_refuses_is_refused_with_onnxruntimes_reason(
    refused: Callable[[str], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN skl2onnx.to_onnx(pipeline, DataFrame): double inputs and a ZipMap of doubles
    model = refused("dataframe_to_onnx")
    # WHEN it is imported THEN onnxruntime's own reason is given
    message = refusal([str(model), "--data", str(tmp_path / "unused.csv")], capsys, tmp_path / "m")
    assert message == (
        "onnxruntime cannot load model.onnx: [ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid "
        "model. Type Error: Type 'tensor(double)' of input parameter (probabilities) of operator (ZipMap) in "
        "node (ZipMap) is invalid."
    )


def test_a_file_that_is_not_onnx_is_refused_with_onnxruntimes_reason(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the data file passed where the model goes (an easy slip)
    export = real_export("wine_zipmap")
    message = refusal([str(export.reference), "--data", str(export.reference)], capsys, tmp_path / "m")
    # THEN onnxruntime's reason is given
    assert message.startswith("onnxruntime cannot load reference.csv: [ONNXRuntimeError] : ")
    assert "INVALID_PROTOBUF" in message


def test_weights_in_an_external_data_file_are_refused_with_how_to_save_one_file(
    refused: Callable[[str], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a model saved with onnx.save_model(..., save_as_external_data=True)
    model = refused("external_data")
    assert (model.parent / "weights.bin").is_file()
    # WHEN it is imported THEN it is refused: the served model must be one file
    message = refusal([str(model), "--data", str(tmp_path / "unused.csv")], capsys, tmp_path / "m")
    assert message == (
        "model.onnx keeps its weights in external data file(s) weights.bin; the served model must be one "
        "file: re-save it whole, e.g. onnx.save_model(onnx.load(path), out, save_as_external_data=False) "
        "(MLflow: mlflow.onnx.save_model(..., save_as_external_data=False)), and import that file"
    )


def test_an_output_that_is_neither_label_probabilities_nor_one_value_is_refused_naming_what_is_supported(
    refused: Callable[[str], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a LinearRegression fitted on linnerud's three targets: one [N, 3] output
    model = refused("multi_target_regression")
    # WHEN it is imported THEN the output is named with its type and shape, and the supported forms listed
    message = refusal([str(model), "--data", str(model.parent / "reference.csv")], capsys, tmp_path / "m")
    assert message == (
        "unsupported model outputs ('variable' tensor(float) [N, 3]): 'variable' tensor(float) [N, 3] is "
        "neither one value per row nor a classifier's probabilities (the graph names no classes; if it holds "
        f"class probabilities, pass --class-names). Supported: {SUPPORTED_OUTPUTS}"
    )


def test_a_target_column_not_in_the_data_is_refused_listing_the_columns(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = real_export("wine_zipmap")
    message = refusal(
        [str(export.source), "--data", str(export.reference), "--target", "species"], capsys, tmp_path / "m"
    )
    assert (
        message
        == f"target column 'species' is not in reference.csv (columns: {', '.join(header(export.reference))})"
    )


def test_class_names_must_be_one_per_class(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the wine export (classes 0, 1, 2) WHEN two names are given THEN refused, counts and classes named
    export = real_export("wine_zipmap")
    args = [
        str(export.source),
        "--data",
        str(export.reference),
        "--target",
        "target",
        "--class-names",
        "red",
        "white",
    ]
    message = refusal(args, capsys, tmp_path / "m")
    assert (
        message
        == "--class-names gives 2 names (red, white) for the model's 3 classes (0, 1, 2), in this order"
    )


def test_class_names_for_a_model_whose_classes_are_already_names_are_refused(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = real_export("lightgbm_classifier")
    args = [str(export.source), "--data", str(export.reference), "--target", "species"]
    message = refusal([*args, "--class-names", "a", "b", "c"], capsys, tmp_path / "m")
    assert message == (
        "the model's classes are already names (Adelie, Chinstrap, Gentoo); --class-names is for integer "
        "labels: drop it"
    )


def test_an_mlflow_directory_without_the_onnx_flavor_is_refused(
    refused: Callable[[str], Path],
    real_export: Callable[[str], Export],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # GIVEN a model saved with mlflow.sklearn.save_model (a pickle, no ONNX)
    directory = refused("mlflow_sklearn_flavor")
    message = refusal(
        [str(directory), "--data", str(real_export("wine_zipmap").reference)], capsys, tmp_path / "m"
    )
    # THEN the flavors it has are named, and the way to save an ONNX one
    assert message == (
        f"{directory} is an MLflow model without the onnx flavor (flavors: python_function, sklearn): save "
        "it with mlflow.onnx.save_model(onnx_model, path, ...), or import its .onnx file directly"
    )


def test_a_model_name_that_cannot_be_a_url_path_or_stack_parameter_is_refused(
    real_export: Callable[[str], Export], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = real_export("wine_zipmap")
    args = [str(export.source), "--data", str(export.reference), "--target", "target", "--name", "Wine Model"]
    message = refusal(args, capsys, tmp_path / "m")
    assert message == (
        "model name 'Wine Model' must match ^[a-z0-9][a-z0-9_-]*$ (lowercase letters, digits, '-' and "
        "'_'; it names the URL path, the layer and the stack's parameters): pass --name"
    )


# -- what is derived ------------------------------------------------------------------------------


def test_a_feature_the_model_answers_with_nan_is_made_required_and_the_command_says_why(
    real_export: Callable[[str], Export], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a LogisticRegression without an imputer, whose reference data has missing measurements
    export = real_export("linear_without_imputer")
    out = tmp_path / "model"
    # WHEN it is imported
    code, stdout, _ = run([*export.import_args(out)], capsys)
    assert code == 0
    manifest = load_manifest(out)
    # THEN the measurements are required (onnxruntime gives NaN probabilities for a NaN), and the
    # command's output says so, feature by feature
    assert [f.nullable for f in manifest.features] == [False] * 4
    for name in export.features:
        assert f"feature {name!r} is required (not nullable) although the data has " in stdout
    # AND the served model refuses a null rather than answering NaN
    service = Service(ModelRuntime.load(out), Settings.from_env())
    row = {**export.rows("test")[0], "bill_length_mm": None}
    with pytest.raises(ServingError) as refused_row:
        service.predict({"instances": [row]})
    assert [(d.field, d.code) for d in refused_row.value.details] == [("bill_length_mm", "null_not_allowed")]


def test_a_model_that_handles_missing_values_keeps_them_nullable(imported: Callable[[str], Path]) -> None:
    # GIVEN LightGBM trained on the penguins measurements with their gaps (it handles NaN itself)
    manifest = load_manifest(imported("lightgbm_classifier"))
    # THEN every measurement the data has gaps in is nullable, and the golden set holds such rows
    assert all(f.nullable for f in manifest.features)
    golden = load_golden(imported("lightgbm_classifier"), manifest)
    assert any(v is None for case in golden.cases for v in case.instance.values())


def test_a_missing_string_is_fed_as_the_token_the_pipeline_was_trained_with(
    imported: Callable[[str], Path], real_export: Callable[[str], Export]
) -> None:
    # GIVEN the ColumnTransformer export, trained with sex.fillna("missing"), imported with
    # --missing-string sex=missing
    model_dir = imported("penguins_columntransformer")
    manifest = load_manifest(model_dir)
    sex = next(f for f in manifest.features if f.name == "sex")
    assert (sex.nullable, sex.missing_string, sex.categories) == (True, "missing", ["female", "male"])
    # WHEN a row with sex null is served THEN the answer is the model's for sex="missing"
    export = real_export("penguins_columntransformer")
    row = {**export.rows("test")[0], "sex": None}
    service = Service(ModelRuntime.load(model_dir), Settings.from_env())
    [served] = service.predict({"instances": [row]})["predictions"]
    [oracle] = export.oracle([row])
    assert served["label"] == oracle["label"]
    assert served["probabilities"] == pytest.approx(oracle["probabilities"], abs=1e-5)


def test_without_the_missing_token_the_command_points_at_the_one_the_graph_knows(
    real_export: Callable[[str], Export], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same export imported without --missing-string
    export = real_export("penguins_columntransformer")
    args = [
        str(export.source),
        "--data",
        str(export.reference),
        "--target",
        "species",
        "--out",
        str(tmp_path / "m"),
    ]
    code, stdout, _ = run(args, capsys)
    # THEN it imports, and says that a missing sex is fed as '' while the graph's encoder knows 'missing'
    assert code == 0
    assert "pass --missing-string sex=missing" in stdout


def test_classes_keep_the_models_order_never_the_text_order(imported: Callable[[str], Path]) -> None:
    # GIVEN an export whose int64 classes are 3, 7, 10 (as text they would sort 10, 3, 7)
    out = load_manifest(imported("labels_3_7_10")).output
    # THEN the manifest keeps the graph's order, names and values alike
    assert isinstance(out, ClassificationOutput)
    assert (out.labels, out.class_values) == (["3", "7", "10"], [3, 7, 10])


def test_the_mlflow_signature_gives_the_feature_order_and_the_target(
    imported: Callable[[str], Path], real_export: Callable[[str], Export]
) -> None:
    # GIVEN an MLflow directory imported without --target or --features
    manifest = load_manifest(imported("mlflow_directory"))
    export = real_export("mlflow_directory")
    # THEN the features are the signature's columns in order, the target its output column, and
    # lineage names the file inside the directory
    assert manifest.feature_names == export.features
    assert {m.name for m in manifest.metrics} == {"accuracy", "macro_f1", "log_loss"}
    assert manifest.lineage.source_file == "wine_mlflow/model.onnx"


def test_metrics_are_the_scikit_learn_metrics_of_the_served_answers(
    imported: Callable[[str], Path], real_export: Callable[[str], Export]
) -> None:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, r2_score

    # GIVEN a classifier and a regressor imported with --test
    export = real_export("wine_zipmap")
    manifest = load_manifest(imported("wine_zipmap"))
    rows, oracle = export.rows("test"), export.oracle(export.rows("test"))
    truth = [export.label_name(int(v)) for v in np.loadtxt(export.test, delimiter=",", skiprows=1)[:, -1]]
    predicted = [o["label"] for o in oracle]
    probabilities = np.array([[o["probabilities"][n] for n in export.class_names or []] for o in oracle])
    probabilities /= probabilities.sum(axis=1, keepdims=True)  # float32 sums are 1 only to ~1e-7
    # THEN accuracy, macro F1 and log loss are scikit-learn's on the same answers (6 digits)
    metrics = {m.name: m.value for m in manifest.metrics}
    assert len(rows) == len(truth)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted), rel=1e-5)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"), rel=1e-5)
    assert metrics["log_loss"] == pytest.approx(
        log_loss(truth, probabilities, labels=export.class_names), rel=1e-5
    )
    # AND for the regressor, mae and r2
    export = real_export("linear_regression")
    manifest = load_manifest(imported("linear_regression"))
    values = [o["value"] for o in export.oracle(export.rows("test"))]
    y = np.loadtxt(export.test, delimiter=",", skiprows=1)[:, -1]
    metrics = {m.name: m.value for m in manifest.metrics}
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, values), rel=1e-5)
    assert metrics["r2"] == pytest.approx(r2_score(y, values), rel=1e-5)
    assert manifest.primary_metric == "mae"


def test_the_same_import_twice_writes_the_same_bytes(
    real_export: Callable[[str], Export], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one export imported twice with a fixed --created-at
    export = real_export("penguins_columntransformer")
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        assert run([*export.import_args(out), "--created-at", "2026-12-01T00:00:00Z"], capsys)[0] == 0
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
    # THEN every file is byte-identical (model.onnx, manifest, golden set, card, openapi, changelog)
    assert digests[0] == digests[1]
    assert set(digests[0]) == {
        "model.onnx",
        "manifest.json",
        "golden.json",
        "MODEL_CARD.md",
        "openapi.json",
        "CHANGELOG.md",
    }


def test_the_golden_set_is_what_the_served_model_answers_and_includes_missing_values(
    imported: Callable[[str], Path],
) -> None:
    # GIVEN an imported model with nullable features
    model_dir = imported("penguins_columntransformer")
    manifest = load_manifest(model_dir)
    golden = load_golden(model_dir, manifest)
    # THEN the golden set has the seeded reference rows plus rows with every nullable feature
    # missing, and the served model answers each one as recorded
    nullable = {f.name for f in manifest.features if f.nullable}
    missing = {name for case in golden.cases for name, v in case.instance.items() if v is None}
    assert missing == nullable
    service = Service(ModelRuntime.load(model_dir), Settings.from_env())
    from onnxlambda.release.golden import compare_predictions, golden_request

    assert compare_predictions(manifest, golden, service.predict(golden_request(golden))) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("examples/wine/model.onnx", "wine"),
        ("exports/Penguins Classifier.onnx", "penguins-classifier"),
        ("mlruns/0/abc/artifacts/My_Model", "my_model"),
    ],
)
def test_the_default_name_comes_from_the_file_or_its_directory(source: str, expected: str) -> None:
    assert default_name(Path(source)) == expected


def test_a_mistyped_option_value_is_refused_with_the_expected_form() -> None:
    with pytest.raises(
        ImportInputError, match=r"--range sex=2: expected MIN:MAX with MIN <= MAX, e\.g\. sex=0:100"
    ):
        command.options_from(["m.onnx", "--data", "d.csv", "--range", "sex=2"])
    with pytest.raises(ImportInputError, match=r"--missing-string takes COLUMN=VALUE, got 'sex'"):
        command.options_from(["m.onnx", "--data", "d.csv", "--missing-string", "sex"])


def test_the_summary_names_the_layout_the_classes_and_the_next_step(
    real_export: Callable[[str], Export], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = real_export("wine_zipmap")
    code, stdout, _ = run(export.import_args(tmp_path / "m"), capsys)
    assert code == 0
    layout = "13 features into float_input[N,13]"
    assert f"{layout}; classifier, 3 classes (class_0, class_1, class_2), probabilities as zipmap" in stdout
    assert stdout.rstrip().endswith("serve it: make serve MODEL=wine-zipmap")
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["lineage"]["kind"] == "imported"
