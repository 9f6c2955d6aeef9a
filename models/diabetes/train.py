"""Train the `diabetes` example model: disease-progression regression on sklearn's diabetes data.

Run from the repository root:

    .venv/bin/python models/diabetes/train.py [--out DIR]

Uses `sklearn.datasets.load_diabetes(scaled=False)` (bundled with scikit-learn, nothing is
downloaded) and writes model.onnx, manifest.json, golden.json, MODEL_CARD.md and openapi.json into DIR
(default: this directory) through `onnxlambda import`, the path a user's own export takes.
Re-running with the pinned requirements-dev.txt reproduces the files byte for byte.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `models` and `onnxlambda` importable
    _root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(_root), str(_root / "layers" / "core")]

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

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

TARGET = "target"
# Feature names as sklearn spells them; descriptions from load_diabetes().DESCR.
FEATURES = {
    "age": "Age in years.",
    "sex": "Sex, coded 1 or 2 as in the source data.",
    "bmi": "Body mass index.",
    "bp": "Average blood pressure.",
    "s1": "tc, total serum cholesterol.",
    "s2": "ldl, low-density lipoproteins.",
    "s3": "hdl, high-density lipoproteins.",
    "s4": "tch, total cholesterol / HDL.",
    "s5": "ltg, possibly log of serum triglycerides level.",
    "s6": "glu, blood sugar level.",
}

SK_VERSION = version("scikit-learn")
SPEC = ModelSpec(
    name="diabetes",
    version=VERSION,
    description="Predicts a quantitative measure of diabetes disease progression one year after "
    "baseline from ten baseline variables. Gradient-boosted regression trees.",
    released_at=RELEASED_AT,
    script=Path(__file__).resolve(),
    dataset=f"Diabetes (Efron et al. 2004) as bundled with scikit-learn {SK_VERSION}",
    source=f"scikit-learn=={SK_VERSION}:sklearn.datasets.load_diabetes(scaled=False)",
    seed=SEED,
    primary_metric="mae",
    intended_use="Example model for the onnxlambda serving stack: demonstrates a regression model with "
    "numeric, non-nullable inputs. For demos, tests and teaching only; not for any medical use.",
    limitations="Trained on 442 patients from a single study; the target is an unnamed progression "
    "score, and the model explains only about half of its variance. Tree ensembles predict a constant "
    "outside the training range of each input, so values near the allowed minimum/maximum get the "
    "prediction of the most extreme training patients. The test split is small (89 rows).",
)


def load_rows() -> list[Instance]:
    """All 442 rows in sklearn's order: the ten unscaled features plus the target."""
    data = load_diabetes(scaled=False)
    names = [str(n) for n in data.feature_names]
    if names != list(FEATURES):
        raise RuntimeError(f"unexpected diabetes feature names {names}")
    return [
        {**{n: float(v) for n, v in zip(names, x, strict=True)}, TARGET: float(y)}
        for x, y in zip(data.data, data.target, strict=True)
    ]


def golden_rows(test: Sequence[Instance], minima: Instance, maxima: Instance) -> list[Instance]:
    """N_GOLDEN test rows plus edge cases: every feature at its allowed minimum, every feature at
    its allowed maximum, and a test row with bmi at its allowed maximum."""
    picked = pick_rows(len(test), N_GOLDEN, SEED)
    cases = [{n: test[i][n] for n in FEATURES} for i in picked]
    cases += [dict(minima), dict(maxima), {**cases[0], "bmi": maxima["bmi"]}]
    return cases


def train(spec: ModelSpec) -> TrainedModel:
    rows = load_rows()
    train_idx, test_idx = train_test_split(np.arange(len(rows)), test_size=TEST_SIZE, random_state=spec.seed)
    train_rows = [rows[i] for i in sorted(train_idx)]
    test_rows = [rows[i] for i in sorted(test_idx)]

    names = list(FEATURES)
    # sex is a 1/2 code: allow exactly the coded values' range; the others get the derived one.
    overrides = {"sex": (1.0, 2.0)}
    ranges = {n: overrides.get(n) or allowed_range([_float(r[n]) for r in train_rows]) for n in names}
    pipeline = Pipeline(
        [
            # Gathers the per-feature ONNX inputs into one matrix, in FEATURES order.
            ("columns", ColumnTransformer([("num", "passthrough", names)])),
            (
                "regressor",
                GradientBoostingRegressor(
                    n_estimators=300,
                    learning_rate=0.03,
                    max_depth=2,
                    min_samples_leaf=5,
                    random_state=spec.seed,
                ),
            ),
        ]
    )
    strings: frozenset[str] = frozenset()
    pipeline.fit(
        sklearn_frame(train_rows, names, strings),
        np.array([r[TARGET] for r in train_rows], dtype=np.float64),
    )

    minima: Instance = {n: low for n, (low, _) in ranges.items()}
    maxima: Instance = {n: high for n, (_, high) in ranges.items()}
    return TrainedModel(
        pipeline=pipeline,
        features=dict(FEATURES),
        strings=strings,
        target=TARGET,
        classifier=False,
        train_rows=train_rows,
        test_rows=test_rows,
        golden_rows=golden_rows(test_rows, minima, maxima),
        ranges=overrides,
        output_name="disease_progression",
    )


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> Path:
    return run(argv, SPEC, train)


if __name__ == "__main__":
    main()
