"""Real exports for the import tests, made the way each library's documentation shows.

Each builder trains a small seeded model on data bundled with an installed package
(scikit-learn's data sets, palmerpenguins), exports it with the documented call (cited above
each one), and writes what a user would hand to `onnxlambda import`: the .onnx file (or an MLflow
directory), reference.csv (the training split with its target) and test.csv. Nothing here is
shaped by the importer: the returned `Export` knows, from how the model was trained, how to feed
the user's own file and how to read its outputs, and that is the oracle the served answers are
compared with.
"""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd

SEED = 0
PENGUIN_NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_STRINGS = ["island", "sex"]

Row = dict[str, Any]


@dataclass(frozen=True)
class Tensor:
    """One input of the user's graph as they built it: its name, element type and columns."""

    name: str
    kind: str  # "float" or "string"
    columns: list[str]


@dataclass(frozen=True)
class Export:
    case: str
    source: Path  # what is imported: the .onnx file, or the MLflow directory
    onnx_file: Path  # the file onnxruntime runs for the oracle
    reference: Path
    test: Path
    target: str
    inputs: list[Tensor]  # the user's layout, from their initial_types
    classes: list[Any] | None  # the fitted estimator's classes_, in its order (None: regressor)
    args: list[str] = field(default_factory=list)  # import flags beyond the paths
    class_names: list[str] | None = None  # what --class-names says, if given
    missing_tokens: dict[str, str] = field(default_factory=dict)  # what the pipeline was trained on

    @property
    def name(self) -> str:
        return self.case.replace("_", "-")

    def import_args(self, out: Path) -> list[str]:
        """The `onnxlambda import` command line for this export, writing into `out`."""
        paths = [str(self.source), "--data", str(self.reference), "--test", str(self.test)]
        return [*paths, "--name", self.name, "--out", str(out), *self.args]

    @property
    def features(self) -> list[str]:
        return [c for t in self.inputs for c in t.columns]

    def rows(self, which: str = "test") -> list[Row]:
        """The CSV's rows as a caller would send them: pandas' reading, None for a missing cell."""
        frame = pd.read_csv(self.test if which == "test" else self.reference)
        return [
            {c: (None if _missing(v) else (v.item() if hasattr(v, "item") else v)) for c, v in row.items()}
            for row in frame[self.features].to_dict("records")
        ]

    def feeds(self, rows: list[Row]) -> dict[str, npt.NDArray[Any]]:
        """What the user feeds their own file: their layout, float32, NaN for a missing number and
        the token their pipeline was trained with for a missing string."""
        out: dict[str, npt.NDArray[Any]] = {}
        for t in self.inputs:
            if t.kind == "string":
                token = [self.missing_tokens.get(c, "") for c in t.columns]
                cells = [
                    [tok if r[c] is None else r[c] for c, tok in zip(t.columns, token, strict=True)]
                    for r in rows
                ]
                out[t.name] = np.array(cells, dtype=object).reshape(len(rows), len(t.columns))
            else:
                cells = [[np.nan if r[c] is None else r[c] for c in t.columns] for r in rows]
                out[t.name] = np.array(cells, dtype=np.float32).reshape(len(rows), len(t.columns))
        return out

    def label_name(self, raw: Any) -> str:
        assert self.classes is not None
        value = raw.item() if hasattr(raw, "item") else raw
        if self.class_names is not None:
            return self.class_names[self.classes.index(value)]
        return str(value)

    def oracle(self, rows: list[Row]) -> list[dict[str, Any]]:
        """onnxruntime on the user's original file, read with what the user knows about it:
        [{"label", "probabilities": {name: p}}] or [{"value"}]."""
        options = ort.SessionOptions()
        options.log_severity_level = 3  # LightGBM's label declared [1] warns on every run
        session = ort.InferenceSession(str(self.onnx_file), options, providers=["CPUExecutionProvider"])
        outputs = session.run(None, self.feeds(rows))
        if self.classes is None:
            return [{"value": float(v)} for v in np.asarray(outputs[0]).reshape(-1)]
        labels, probabilities = outputs[0], outputs[1]
        answers = []
        for i, raw in enumerate(np.asarray(labels).reshape(-1)):
            p = probabilities[i]
            by_class = (
                {c: p[c] for c in self.classes}
                if isinstance(p, dict)
                else dict(zip(self.classes, p, strict=True))
            )
            answers.append(
                {
                    "label": self.label_name(raw),
                    "probabilities": {self.label_name(c): float(v) for c, v in by_class.items()},
                }
            )
        return answers

    def v2_inputs(self, rows: list[Row]) -> list[dict[str, Any]]:
        """The user's tensors for POST /v2/models/<name>/infer: row-major, null where missing."""
        return [
            {
                "name": t.name,
                "datatype": "BYTES" if t.kind == "string" else "FP32",
                "shape": [len(rows), len(t.columns)],
                "data": [r[c] for r in rows for c in t.columns],
            }
            for t in self.inputs
        ]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _write(
    out: Path, X_train: Any, y_train: Any, X_test: Any, y_test: Any, *, target: str
) -> tuple[Path, Path]:
    reference, test = out / "reference.csv", out / "test.csv"
    X_train.assign(**{target: np.asarray(y_train)}).to_csv(reference, index=False)
    X_test.assign(**{target: np.asarray(y_test)}).to_csv(test, index=False)
    return reference, test


def _split(X: Any, y: Any, stratify: bool = True) -> Any:
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y if stratify else None)


def _save(out: Path, onx: Any) -> Path:
    path = out / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def _export(
    case: str,
    out: Path,
    onx: Any,
    split: tuple[Any, Any, Any, Any],
    *,
    target: str,
    inputs: list[Tensor],
    classes: list[Any] | None,
    class_names: list[str] | None = None,
    flags: tuple[str, ...] = (),
    missing_tokens: dict[str, str] | None = None,
) -> Export:
    """What the user hands over for a model they exported to `onx`: model.onnx, and the split
    (X_train, X_test, y_train, y_test) as they have it, as reference.csv and test.csv; they import
    it with --target, --class-names when they name the classes, and `flags`."""
    X_train, X_test, y_train, y_test = split
    reference, test = _write(out, X_train, y_train, X_test, y_test, target=target)
    args = ["--target", target, *(["--class-names", *class_names] if class_names else []), *flags]
    return Export(
        case=case,
        source=_save(out, onx),
        onnx_file=out / "model.onnx",
        reference=reference,
        test=test,
        target=target,
        inputs=inputs,
        classes=classes,
        args=args,
        class_names=class_names,
        missing_tokens=missing_tokens or {},
    )


# -- scikit-learn via skl2onnx -------------------------------------------------------------------


def _wine_pipeline() -> tuple[Any, Any, Any, Any, Any]:
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(as_frame=True, return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y)
    pipe = Pipeline(
        [("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, random_state=SEED))]
    )
    pipe.fit(X_train, y_train)
    return pipe, X_train, X_test, y_train, y_test


def _wine_without_zipmap(pipe: Any) -> Any:
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_convert_zipmap.html: zipmap False gives a
    # [N, 3] probability tensor.
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        pipe,
        initial_types=[("float_input", FloatTensorType([None, 13]))],
        options={id(pipe.named_steps["clf"]): {"zipmap": False}},
    )


def wine_zipmap(out: Path) -> Export:
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_convert_model.html: one packed input,
    # default options (probabilities as a ZipMap, int64 labels).
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine

    pipe, X_train, X_test, y_train, y_test = _wine_pipeline()
    onx = convert_sklearn(pipe, initial_types=[("float_input", FloatTensorType([None, 13]))])
    names = [str(n) for n in load_wine().target_names]
    return _export(
        "wine_zipmap",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="target",
        inputs=[Tensor("float_input", "float", list(X_train.columns))],
        classes=[int(c) for c in pipe.classes_],
        class_names=names,
    )


def wine_nozipmap(out: Path) -> Export:
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_convert_zipmap.html: zipmap False gives a
    # [N, 3] probability tensor; no --class-names, so the classes are served as "0", "1", "2".
    pipe, X_train, X_test, y_train, y_test = _wine_pipeline()
    onx = _wine_without_zipmap(pipe)
    return _export(
        "wine_nozipmap",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="target",
        inputs=[Tensor("float_input", "float", list(X_train.columns))],
        classes=[int(c) for c in pipe.classes_],
    )


def _penguins() -> tuple[Any, Any]:
    import palmerpenguins

    frame = palmerpenguins.load_penguins()  # the package's bundled CSV; NaNs included
    return frame[PENGUIN_NUMBERS + PENGUIN_STRINGS].copy(), frame["species"].copy()


def penguins_columntransformer(out: Path) -> Export:
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_complex_pipeline.html: string NaNs filled
    # with "missing" before training (skl2onnx cannot convert a string imputer for NaN), one
    # ColumnTransformer selecting by integer position over a packed numeric input + one string
    # input per column (positions index the graph inputs in order).
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _penguins()
    X_train, X_test, y_train, y_test = _split(X, y)
    filled = X_train.copy()
    filled[PENGUIN_STRINGS] = filled[PENGUIN_STRINGS].fillna("missing")
    numeric = Pipeline([("imputer", SimpleImputer(strategy="median")), ("scaler", StandardScaler())])
    pre = ColumnTransformer(
        [("num", numeric, [0, 1, 2, 3]), ("cat", OneHotEncoder(handle_unknown="ignore"), [4, 5])]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000, random_state=SEED))])
    pipe.fit(filled, y_train)
    onx = convert_sklearn(
        pipe,
        initial_types=[
            ("numeric_input", FloatTensorType([None, 4])),
            ("island", StringTensorType([None, 1])),
            ("sex", StringTensorType([None, 1])),
        ],
    )
    return _export(
        "penguins_columntransformer",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="species",  # reference.csv and test.csv hold the raw data, NaNs included
        inputs=[
            Tensor("numeric_input", "float", PENGUIN_NUMBERS),
            Tensor("island", "string", ["island"]),
            Tensor("sex", "string", ["sex"]),
        ],
        classes=[str(c) for c in pipe.classes_],
        flags=("--missing-string", "sex=missing"),
        missing_tokens={"sex": "missing"},
    )


def labels_3_7_10(out: Path) -> Export:
    # https://onnx.ai/sklearn-onnx/auto_tutorial/plot_dbegin_options_zipmap.html: integer classes
    # that are not 0..C-1; their order (3, 7, 10) is not their order as text ("10", "3", "7").
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(as_frame=True, return_X_y=True)
    y = y.map({0: 3, 1: 7, 2: 10})
    X_train, X_test, y_train, y_test = _split(X, y)
    clf = LogisticRegression(max_iter=1000, random_state=SEED).fit(X_train, y_train)
    onx = convert_sklearn(clf, initial_types=[("float_input", FloatTensorType([None, 4]))])
    return _export(
        "labels_3_7_10",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="target",
        inputs=[Tensor("float_input", "float", list(X_train.columns))],
        classes=[int(c) for c in clf.classes_],
    )


def linear_regression(out: Path) -> Export:
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_convert_model.html (a regressor: same call);
    # the output `variable` is [N, 1].
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(as_frame=True, return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y, stratify=False)
    model = LinearRegression().fit(X_train, y_train)
    onx = convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, 10]))])
    return _export(
        "linear_regression",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="target",
        inputs=[Tensor("float_input", "float", list(X_train.columns))],
        classes=None,
        flags=("--output-name", "progression"),
    )


def linear_without_imputer(out: Path) -> Export:
    # A pipeline fitted on the complete rows only, while the reference data keeps the rows with
    # missing measurements: onnxruntime answers NaN for them (LinearClassifier has no imputer).
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _penguins()
    X = X[PENGUIN_NUMBERS]
    X_train, X_test, y_train, y_test = _split(X, y)
    complete = X_train.notna().all(axis=1)
    pipe = Pipeline(
        [("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, random_state=SEED))]
    )
    pipe.fit(X_train[complete], y_train[complete])
    onx = convert_sklearn(pipe, initial_types=[("float_input", FloatTensorType([None, 4]))])
    return _export(
        "linear_without_imputer",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="species",
        inputs=[Tensor("float_input", "float", PENGUIN_NUMBERS)],
        classes=[str(c) for c in pipe.classes_],
    )


# -- LightGBM and XGBoost via onnxmltools ---------------------------------------------------------


def lightgbm_classifier(out: Path) -> Export:
    # https://onnx.ai/onnxmltools/auto_examples/plot_convert_lightgbm.html: convert_lightgbm with
    # FloatTensorType([None, F]); LightGBM handles the missing measurements itself, labels are the
    # species strings, probabilities a ZipMap, and the label output is declared [1].
    import lightgbm
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y = _penguins()
    X = X[PENGUIN_NUMBERS]
    X_train, X_test, y_train, y_test = _split(X, y)
    clf = lightgbm.LGBMClassifier(n_estimators=30, random_state=SEED, n_jobs=1, verbose=-1)
    clf.fit(X_train, y_train)
    onx = convert_lightgbm(clf, initial_types=[("input", FloatTensorType([None, 4]))])
    return _export(
        "lightgbm_classifier",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="species",
        inputs=[Tensor("input", "float", PENGUIN_NUMBERS)],
        classes=[str(c) for c in clf.classes_],
    )


def xgboost_classifier(out: Path) -> Export:
    # https://onnx.ai/onnxmltools/auto_examples/plot_convert_xgboost.html: fitted on a numpy array
    # (convert_xgboost refuses DataFrame feature names), no ZipMap, [N, 3] probabilities.
    import xgboost
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine

    X, y = load_wine(as_frame=True, return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y)
    clf = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=SEED, n_jobs=1)
    clf.fit(X_train.to_numpy(), y_train.to_numpy())
    onx = convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, 13]))])
    names = ["barolo", "grignolino", "barbera"]
    return _export(
        "xgboost_classifier",
        out,
        onx,
        (X_train, X_test, y_train, y_test),
        target="target",
        inputs=[Tensor("input", "float", list(X_train.columns))],
        classes=[int(c) for c in clf.classes_],
        class_names=names,
    )


# -- MLflow ---------------------------------------------------------------------------------------


def mlflow_directory(out: Path) -> Export:
    # https://mlflow.org/docs/latest/api_reference/python_api/mlflow.onnx.html: save_model with a
    # signature inferred from the DataFrame and an input example. No --target: the signature's
    # output names it; the feature order comes from the signature too.
    import mlflow.onnx
    from mlflow.models import infer_signature

    pipe, X_train, X_test, y_train, y_test = _wine_pipeline()
    onx = _wine_without_zipmap(pipe)
    directory = out / "wine_mlflow"
    shutil.rmtree(directory, ignore_errors=True)
    X = X_train.reset_index(drop=True)
    with warnings.catch_warnings():  # mlflow's hints about integer columns and pandas deprecations
        warnings.simplefilter("ignore")
        mlflow.onnx.save_model(
            onx,
            str(directory),
            signature=infer_signature(X, y_train.rename("target")),
            input_example=X.head(3),
        )
    reference, test = _write(out, X_train, y_train, X_test, y_test, target="target")
    return Export(
        case="mlflow_directory",
        source=directory,
        onnx_file=directory / "model.onnx",
        reference=reference,
        test=test,
        target="target",
        inputs=[Tensor("float_input", "float", list(X_train.columns))],
        classes=[int(c) for c in pipe.classes_],
    )


# -- exports the importer refuses ----------------------------------------------------------------


def dataframe_to_onnx(out: Path) -> Path:
    # https://onnx.ai/sklearn-onnx/api_summary.html (to_onnx guesses the types from a DataFrame):
    # float64 columns become double inputs and the ZipMap gets doubles, a graph onnxruntime refuses.
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _penguins()
    X = X.dropna()
    y = y[X.index]
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), PENGUIN_NUMBERS),
            ("cat", OneHotEncoder(handle_unknown="ignore"), PENGUIN_STRINGS),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    return _save(out, to_onnx(pipe, X[:1]))


def multi_target_regression(out: Path) -> Path:
    # scikit-learn's linnerud data has three targets: one LinearRegression predicts all three,
    # and skl2onnx exports a [N, 3] output (plot_convert_model's call).
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_linnerud
    from sklearn.linear_model import LinearRegression

    X, Y = load_linnerud(as_frame=True, return_X_y=True)
    model = LinearRegression().fit(X, Y)
    X.to_csv(out / "reference.csv", index=False)
    return _save(out, convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, 3]))]))


def external_data(out: Path) -> Path:
    # Exporters that store weights as raw bytes (torch.onnx, tf2onnx) and large models are saved
    # with the weights beside the graph: https://onnx.ai/onnx/repo-docs/ExternalData.html. The
    # MLP's weights are re-encoded as raw data the way those exporters write them, then saved with
    # onnx.save_model(..., save_as_external_data=True), the documented call.
    import onnx
    from onnx import numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine
    from sklearn.neural_network import MLPClassifier

    X, y = load_wine(return_X_y=True)
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=SEED).fit(X, y)
    onx = convert_sklearn(mlp, initial_types=[("float_input", FloatTensorType([None, 13]))])
    for i, tensor in enumerate(onx.graph.initializer):
        onx.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    path = out / "model.onnx"
    onnx.save_model(
        onx, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin"
    )
    return path


def mlflow_sklearn_flavor(out: Path) -> Path:
    # https://mlflow.org/docs/latest/api_reference/python_api/mlflow.sklearn.html: the model saved
    # as a scikit-learn pickle, no ONNX in the directory.
    import mlflow.sklearn

    pipe, *_ = _wine_pipeline()
    directory = out / "sklearn_model"
    shutil.rmtree(directory, ignore_errors=True)
    mlflow.sklearn.save_model(pipe, str(directory), serialization_format="cloudpickle")
    return directory


SERVED: dict[str, Callable[[Path], Export]] = {
    "wine_zipmap": wine_zipmap,
    "wine_nozipmap": wine_nozipmap,
    "penguins_columntransformer": penguins_columntransformer,
    "lightgbm_classifier": lightgbm_classifier,
    "xgboost_classifier": xgboost_classifier,
    "linear_regression": linear_regression,
    "labels_3_7_10": labels_3_7_10,
    "mlflow_directory": mlflow_directory,
    "linear_without_imputer": linear_without_imputer,
}
REFUSED: dict[str, Callable[[Path], Path]] = {
    "dataframe_to_onnx": dataframe_to_onnx,
    "multi_target_regression": multi_target_regression,
    "external_data": external_data,
    "mlflow_sklearn_flavor": mlflow_sklearn_flavor,
}
