"""Train the `penguins` example model: species classification on the Palmer penguins data.

Run from the repository root:

    .venv/bin/python models/penguins/train.py [--out DIR]

Reads the CSV bundled in the `palmerpenguins` package (nothing is downloaded) and writes
model.onnx, manifest.json, golden.json, MODEL_CARD.md and openapi.json into DIR (default: this
directory) through `onnxlambda import`, the path a user's own export takes. Re-running with the
pinned requirements-dev.txt reproduces the files byte for byte.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `models` and `onnxlambda` importable
    _root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(_root), str(_root / "layers" / "core")]

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models._common import (
    Instance,
    ModelSpec,
    TrainedModel,
    allowed_range,
    pick_rows,
    run,
    sklearn_frame,
)

# Release time of this model version. Fixed (not "now") so re-training is byte-identical;
# bump it together with VERSION.
RELEASED_AT = "2026-11-27T00:00:00Z"
VERSION = "1.0.0"
SEED = 42
TEST_SIZE = 0.2
N_GOLDEN = 32  # rows drawn from the test split, plus the edge cases below

TARGET = "species"
STRING_FEATURES = {
    "island": "Island in the Palmer Archipelago where the penguin was observed.",
    "sex": "Sex of the penguin (missing for some birds).",
}
NUMERIC_FEATURES = {
    "bill_length_mm": "Bill (culmen) length in millimetres.",
    "bill_depth_mm": "Bill (culmen) depth in millimetres.",
    "flipper_length_mm": "Flipper length in millimetres.",
    "body_mass_g": "Body mass in grams.",
}
# island is always recorded; sex and the measurements are missing for a few birds (so the import
# finds them nullable in the data, and checks that the pipeline's imputers answer a null).
FEATURE_ORDER = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]

PP_VERSION = version("palmerpenguins")
SPEC = ModelSpec(
    name="penguins",
    version=VERSION,
    description="Predicts the species of a Palmer Archipelago penguin (Adelie, Chinstrap or Gentoo) "
    "from its island, sex and body measurements. Multinomial logistic regression.",
    released_at=RELEASED_AT,
    script=Path(__file__).resolve(),
    dataset=f"Palmer penguins (palmerpenguins {PP_VERSION})",
    source=f"palmerpenguins=={PP_VERSION}:data/penguins.csv",
    seed=SEED,
    primary_metric="accuracy",
    intended_use="Example model for the onnxlambda serving stack: demonstrates a classifier with "
    "categorical and nullable inputs. Suitable for demos, tests and teaching; not for ecological research.",
    limitations="Trained on 344 birds from three islands observed in 2007-2009. Only the three species "
    "in the data can be predicted; an unknown island is ignored (all-zero one-hot) rather than rejected "
    "by the model. Missing measurements are imputed with the training median, which makes predictions "
    "for rows with several missing values much less reliable. The test split is small (69 rows), so "
    "the metrics have wide confidence intervals.",
)


def load_rows() -> list[Instance]:
    """All rows with a known species, in file order; "NA" -> None, measurements as floats."""
    text = files("palmerpenguins").joinpath("data/penguins.csv").read_text(encoding="utf-8")
    rows: list[Instance] = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: Instance = {TARGET: None if raw[TARGET] == "NA" else raw[TARGET]}
        for name in FEATURE_ORDER:
            value = raw[name]
            if value == "NA":
                row[name] = None
            elif name in NUMERIC_FEATURES:
                row[name] = float(value)
            else:
                row[name] = value
        if row[TARGET] is not None:
            rows.append(row)
    return rows


def golden_rows(test: Sequence[Instance], maxima: dict[str, float]) -> list[Instance]:
    """N_GOLDEN test rows plus edge cases: every test row with a missing value, a row with sex
    missing, one with two measurements missing, one with only the island known, and one with every
    measurement at its allowed maximum."""

    def features_of(row: Instance) -> Instance:
        return {name: row[name] for name in FEATURE_ORDER}

    picked = pick_rows(len(test), N_GOLDEN, SEED)
    cases = [features_of(test[i]) for i in picked]
    cases += [
        features_of(row)
        for i, row in enumerate(test)
        if i not in picked and any(row[n] is None for n in FEATURE_ORDER)
    ]
    base = features_of(test[picked[0]])
    cases.append({**base, "sex": None})
    cases.append({**base, "bill_length_mm": None, "body_mass_g": None})
    cases.append({name: (base["island"] if name == "island" else None) for name in FEATURE_ORDER})
    cases.append({**features_of(test[picked[-1]]), **maxima})
    return cases


def train(spec: ModelSpec) -> TrainedModel:
    rows = load_rows()
    species = [str(r[TARGET]) for r in rows]
    train_idx, test_idx = train_test_split(
        np.arange(len(rows)), test_size=TEST_SIZE, random_state=spec.seed, stratify=species
    )
    train_rows = [rows[i] for i in sorted(train_idx)]
    test_rows = [rows[i] for i in sorted(test_idx)]

    numeric = [n for n in FEATURE_ORDER if n in NUMERIC_FEATURES]
    strings = [n for n in FEATURE_ORDER if n in STRING_FEATURES]
    preprocess = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(missing_values="", strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                strings,
            ),
        ]
    )
    clf = LogisticRegression(max_iter=1000, random_state=spec.seed)
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", clf)])
    text = frozenset(STRING_FEATURES)
    pipeline.fit(sklearn_frame(train_rows, FEATURE_ORDER, text), [str(r[TARGET]) for r in train_rows])

    maxima = {n: allowed_range([_float(r[n]) for r in train_rows])[1] for n in numeric}
    return TrainedModel(
        pipeline=pipeline,
        features={n: {**STRING_FEATURES, **NUMERIC_FEATURES}[n] for n in FEATURE_ORDER},
        strings=text,
        target=TARGET,
        classifier=True,
        train_rows=train_rows,
        test_rows=test_rows,
        golden_rows=golden_rows(test_rows, maxima),
        onnx_options={id(clf): {"zipmap": False}},
    )


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> Path:
    return run(argv, SPEC, train)


if __name__ == "__main__":
    main()
