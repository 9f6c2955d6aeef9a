"""A user's model, made the way scikit-learn and skl2onnx document it: the README's quick start.

Run from the repository root (it is what `make model` runs first):

    .venv/bin/python examples/wine/export.py

Trains a StandardScaler + LogisticRegression pipeline on scikit-learn's bundled wine data and
exports it as skl2onnx's "Train, convert and predict" example does: one packed input
FloatTensorType([None, 13]), default options (so the probabilities come as a ZipMap and the
labels as int64 0, 1, 2). Writes, next to this file (or into --out), what a user would hand to
`onnxlambda import`: model.onnx, reference.csv (the training split, with the target column) and
test.csv (the held-out split). Column names are sklearn's, "od280/od315_of_diluted_wines" included.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from onnx.helper import make_opsetid
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SEED = 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train and export the wine example as a user would.")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: next to this file)")
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_wine(as_frame=True, return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y)
    pipe = Pipeline(
        [("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000, random_state=SEED))]
    )
    pipe.fit(X_train, y_train)
    # https://onnx.ai/sklearn-onnx/auto_examples/plot_convert_model.html
    onx = convert_sklearn(pipe, initial_types=[("float_input", FloatTensorType([None, 13]))], name="wine")
    # Only so that re-running this script reproduces the committed bytes (skl2onnx names the graph
    # with a uuid unless given `name`, and lists opsets in hash order): a user's file need not be.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    onx.opset_import.extend(make_opsetid(domain, version) for domain, version in opsets)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    X_train.assign(target=y_train).to_csv(out / "reference.csv", index=False, lineterminator="\n")
    X_test.assign(target=y_test).to_csv(out / "test.csv", index=False, lineterminator="\n")
    print(f"wrote {out / 'model.onnx'}, reference.csv ({len(X_train)} rows), test.csv ({len(X_test)} rows)")


if __name__ == "__main__":
    main()
