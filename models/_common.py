"""Shared helpers for the example-model training scripts (`models/<name>/train.py`).

Everything a training script writes goes through here so that every model ships the same
artifact set, built the same way:

    model.onnx      the exported graph (one ONNX input per feature, shape [N, 1])
    manifest.json   onnxlambda.contract.manifest.Manifest
    golden.json     onnxlambda.contract.manifest.GoldenSet
    MODEL_CARD.md   human-readable summary generated from the manifest

Reproducibility: all artifacts are a pure function of (training script, this file, pinned
library versions). Floats are rounded before they are serialised, the ONNX graph gets a fixed
name, and the release timestamp is a constant in the training script, so re-running a script
produces byte-identical files.

Request-row convention (shared with the serving code): an *instance* is a dict mapping feature
name to a JSON value, ``None`` for a missing value. The ONNX model is fed float32 ``NaN`` for a
missing number and ``""`` for a missing string; the sklearn pipeline is fed the same values
(float64 ``NaN`` and ``""``) so the two can be compared directly.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pandas as pd
from onnx.helper import make_opsetid
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from onnxlambda.contract.manifest import (
    MANIFEST_FILE,
    Baselines,
    CategoricalBaseline,
    ClassificationOutput,
    Feature,
    GoldenCase,
    GoldenSet,
    GoldenSpec,
    Lineage,
    Manifest,
    Metric,
    ModelInput,
    NumericBaseline,
    RegressionOutput,
    Training,
    as_json,
    dump_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CARD_FILE = "MODEL_CARD.md"

# ONNX opsets the example models are exported with (pinned so a skl2onnx upgrade cannot
# silently change the graph).
TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}

# Significant digits for floats written to manifest.json (statistics, metrics, cut points).
SIG_DIGITS = 6
# Decimal places for the expected values in golden.json.
PROBABILITY_DECIMALS = 6
VALUE_DECIMALS = 4
# Number of quantile bins in a NumericBaseline.
BASELINE_BINS = 10

Instance = dict[str, float | int | str | None]
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- hashing


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    """The id git gives a file with this content (`git hash-object FILE`), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def canonical_csv(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> bytes:
    """A canonical CSV serialisation of `rows` (in the given order) for fingerprinting.

    Header = `columns`; "\\n" line endings; minimal quoting; missing (None/NaN) -> empty field;
    floats as Python's shortest round-trip `repr`; integers and strings as `str`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_canonical_cell(row[c]) for c in columns])
    return buf.getvalue().encode("utf-8")


def _canonical_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def fingerprint(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> str:
    """sha256 over `canonical_csv` of the exact rows used for training and evaluation."""
    return sha256_bytes(canonical_csv(columns, rows))


# --------------------------------------------------------------------------- rounding


def sig(x: float, digits: int = SIG_DIGITS) -> float:
    """Round to `digits` significant digits (stable text in JSON)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


# --------------------------------------------------------------------------- features


def plausible_range(values: FloatArray, *, non_negative: bool, widen: float = 0.5) -> tuple[float, float]:
    """The allowed [minimum, maximum] for a numeric feature.

    The training min/max widened by `widen` x (max - min) on each side, rounded outwards to a
    step of 10**(floor(log10(range)) - 1), and clamped at 0 when the quantity cannot be negative.
    """
    finite = values[~np.isnan(values)]
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    exponent = math.floor(math.log10(span)) - 1
    step = 10.0**exponent
    ndigits = max(0, -exponent)
    low = round(math.floor((lo - widen * span) / step) * step, ndigits)
    high = round(math.ceil((hi + widen * span) / step) * step, ndigits)
    if non_negative:
        low = max(low, 0.0)
    return float(low), float(high)


def numeric_feature(
    name: str,
    train_values: FloatArray,
    *,
    description: str,
    nullable: bool = False,
    non_negative: bool = True,
    widen: float = 0.5,
) -> Feature:
    low, high = plausible_range(train_values, non_negative=non_negative, widen=widen)
    return Feature(
        name=name, dtype="float32", description=description, nullable=nullable, minimum=low, maximum=high
    )


def categorical_feature(
    name: str, train_values: Sequence[str | None], *, description: str, nullable: bool = False
) -> Feature:
    categories = sorted({v for v in train_values if v is not None})
    return Feature(
        name=name, dtype="string", description=description, nullable=nullable, categories=categories
    )


# --------------------------------------------------------------------------- baselines


def numeric_baseline(values: Sequence[float | None] | FloatArray) -> NumericBaseline:
    """Reference distribution of a numeric column.

    `count` is the number of rows INCLUDING missing ones, `missing` the number of None/NaN;
    mean/std_dev (population, ddof=0)/min/max are over the non-missing values.

    Binning convention (the monitoring code must use the same): `cut_points` are the 9 interior
    deciles of the non-missing values (numpy.quantile, linear interpolation), rounded to 6
    significant digits and deduplicated, so there are at most 10 bins. A value x falls in bin
    ``numpy.searchsorted(cut_points, x, side="right")``, i.e. bin i holds
    ``cut_points[i-1] <= x < cut_points[i]`` (bin 0 is (-inf, cut_points[0]), the last bin is
    [cut_points[-1], +inf)). `counts[i]` is the number of non-missing values in bin i.
    """
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    present = arr[~np.isnan(arr)]
    if present.size == 0:
        raise ValueError("numeric baseline needs at least one non-missing value")
    qs = np.quantile(present, [i / BASELINE_BINS for i in range(1, BASELINE_BINS)])
    cut_points = sorted({sig(float(q)) for q in qs})
    bins = np.searchsorted(np.array(cut_points), present, side="right")
    counts = np.bincount(bins, minlength=len(cut_points) + 1)
    return NumericBaseline(
        count=int(arr.size),
        missing=int(arr.size - present.size),
        mean=sig(float(present.mean())),
        std_dev=sig(float(present.std())),
        min=sig(float(present.min())),
        max=sig(float(present.max())),
        cut_points=cut_points,
        counts=[int(c) for c in counts],
    )


def categorical_baseline(values: Sequence[str | None]) -> CategoricalBaseline:
    """Category counts. `count` includes missing rows; `counts` covers the non-missing ones."""
    counts: dict[str, int] = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return CategoricalBaseline(
        count=len(values), missing=sum(v is None for v in values), counts=dict(sorted(counts.items()))
    )


def feature_baseline(feature: Feature, rows: Sequence[Instance]) -> NumericBaseline | CategoricalBaseline:
    column = [row[feature.name] for row in rows]
    if feature.is_categorical:
        return categorical_baseline([None if v is None else str(v) for v in column])
    return numeric_baseline([None if v is None else float(v) for v in column])


# --------------------------------------------------------------------------- model inputs


def sklearn_frame(rows: Sequence[Instance], features: Sequence[Feature]) -> Any:
    """The pandas DataFrame the sklearn pipeline is fitted on / predicts from.

    Numbers: float64 with NaN for missing. Strings: object with "" for missing (same convention
    as the ONNX input).
    """
    data: dict[str, Any] = {}
    for f in features:
        column = [row[f.name] for row in rows]
        if f.is_categorical:
            data[f.name] = np.array(["" if v is None else str(v) for v in column], dtype=object)
        else:
            data[f.name] = np.array([np.nan if v is None else float(v) for v in column], dtype=np.float64)
    return pd.DataFrame(data)


def onnx_feeds(rows: Sequence[Instance], features: Sequence[Feature]) -> dict[str, np.ndarray[Any, Any]]:
    """ONNX input tensors, [N, 1] each: float32 with NaN for missing, string with "" for missing."""
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for f in features:
        column = [row[f.name] for row in rows]
        if f.is_categorical:
            arr = np.array(["" if v is None else str(v) for v in column], dtype=object)
        elif f.dtype == "float32":
            arr = np.array([np.nan if v is None else float(v) for v in column], dtype=np.float32)
        else:
            raise NotImplementedError(f"feature dtype {f.dtype} is not used by the example models")
        feeds[f.name] = arr.reshape(-1, 1)
    return feeds


def export_onnx(pipeline: Any, features: Sequence[Feature], *, name: str, options: Any = None) -> bytes:
    """Convert a fitted pipeline with skl2onnx: one input per feature named like the feature."""
    initial_types = [
        (f.name, StringTensorType([None, 1]) if f.is_categorical else FloatTensorType([None, 1]))
        for f in features
    ]
    onx = convert_sklearn(
        pipeline, name=name, initial_types=initial_types, options=options, target_opset=TARGET_OPSET
    )
    onx.doc_string = ""
    # skl2onnx emits opset_import in set order (varies with PYTHONHASHSEED): sort it.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    onx.opset_import.extend(make_opsetid(domain, ver) for domain, ver in opsets)
    data: bytes = onx.SerializeToString(deterministic=True)
    return data


def session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Predictions:
    """Model outputs for N rows: labels+probabilities (classification) or values (regression)."""

    labels: list[str] | None = None
    probabilities: FloatArray | None = None
    values: FloatArray | None = None


def predict_onnx(
    sess: ort.InferenceSession,
    output: ClassificationOutput | RegressionOutput,
    rows: Sequence[Instance],
    features: Sequence[Feature],
) -> Predictions:
    feeds = onnx_feeds(rows, features)
    if isinstance(output, ClassificationOutput):
        names = [output.label_tensor] + ([output.probability_tensor] if output.probability_tensor else [])
        result = sess.run(names, feeds)
        probs = np.asarray(result[1], dtype=np.float64) if len(result) > 1 else None
        return Predictions(labels=[str(x) for x in result[0]], probabilities=probs)
    (values,) = sess.run([output.value_tensor], feeds)
    return Predictions(values=np.asarray(values, dtype=np.float64).reshape(-1))


def predict_sklearn(
    pipeline: Any,
    output: ClassificationOutput | RegressionOutput,
    rows: Sequence[Instance],
    features: Sequence[Feature],
) -> Predictions:
    frame = sklearn_frame(rows, features)
    if isinstance(output, ClassificationOutput):
        return Predictions(
            labels=[str(x) for x in pipeline.predict(frame)],
            probabilities=np.asarray(pipeline.predict_proba(frame), dtype=np.float64),
        )
    return Predictions(values=np.asarray(pipeline.predict(frame), dtype=np.float64).reshape(-1))


def assert_close(onnx_pred: Predictions, sk_pred: Predictions, golden: GoldenSpec, *, context: str) -> None:
    """Fail loudly if the exported graph disagrees with the sklearn pipeline."""
    if onnx_pred.labels is not None:
        if onnx_pred.labels != sk_pred.labels:
            raise AssertionError(f"{context}: ONNX and sklearn labels differ")
        assert onnx_pred.probabilities is not None
        assert sk_pred.probabilities is not None
        diff = float(np.max(np.abs(onnx_pred.probabilities - sk_pred.probabilities)))
        if not diff <= golden.probability_tolerance:
            raise AssertionError(f"{context}: max probability difference {diff:.3g}")
    else:
        assert onnx_pred.values is not None
        assert sk_pred.values is not None
        diff = float(np.max(np.abs(onnx_pred.values - sk_pred.values)))
        if not diff <= golden.value_tolerance:
            raise AssertionError(f"{context}: max value difference {diff:.3g}")


# --------------------------------------------------------------------------- metrics


def classification_metrics(labels: Sequence[str], y_true: Sequence[str], pred: Predictions) -> list[Metric]:
    assert pred.labels is not None
    assert pred.probabilities is not None
    # float32 probabilities from the graph sum to 1 only up to ~1e-7; renormalise for log_loss.
    probabilities = pred.probabilities / pred.probabilities.sum(axis=1, keepdims=True)
    return [
        Metric(name="accuracy", value=sig(float(accuracy_score(y_true, pred.labels)))),
        Metric(name="macro_f1", value=sig(float(f1_score(y_true, pred.labels, average="macro")))),
        Metric(
            name="log_loss",
            value=sig(float(log_loss(y_true, probabilities, labels=list(labels)))),
            higher_is_better=False,
        ),
    ]


def regression_metrics(y_true: FloatArray, pred: Predictions) -> list[Metric]:
    assert pred.values is not None
    return [
        Metric(name="r2", value=sig(float(r2_score(y_true, pred.values)))),
        Metric(
            name="mae", value=sig(float(mean_absolute_error(y_true, pred.values))), higher_is_better=False
        ),
        Metric(
            name="rmse",
            value=sig(math.sqrt(float(mean_squared_error(y_true, pred.values)))),
            higher_is_better=False,
        ),
    ]


# --------------------------------------------------------------------------- golden set


def golden_expected(
    output: ClassificationOutput | RegressionOutput, pred: Predictions, i: int
) -> dict[str, object]:
    """Expected response for row i: {"label", "probabilities"} or {output.name: value}."""
    if isinstance(output, ClassificationOutput):
        assert pred.labels is not None
        expected: dict[str, object] = {"label": pred.labels[i]}
        if pred.probabilities is not None:
            expected["probabilities"] = {
                label: round(float(p), PROBABILITY_DECIMALS)
                for label, p in zip(output.labels, pred.probabilities[i], strict=True)
            }
        return expected
    assert pred.values is not None
    return {output.name: round(float(pred.values[i]), VALUE_DECIMALS)}


def pick_rows(n_available: int, n: int, seed: int) -> list[int]:
    """`n` distinct row positions out of `n_available`, deterministic for a seed, in order."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_available, size=min(n, n_available), replace=False))


# --------------------------------------------------------------------------- packaging


def library_versions() -> dict[str, str]:
    return {
        "numpy": version("numpy"),
        "onnx": version("onnx"),
        "onnxruntime": version("onnxruntime"),
        "pandas": version("pandas"),
        "python": platform.python_version(),
        "scikit-learn": version("scikit-learn"),
        "skl2onnx": version("skl2onnx"),
    }


def lineage(script: Path, released_at: str) -> Lineage:
    data = script.read_bytes()
    return Lineage(
        kind="trained",
        created_at=released_at,
        train_script=script.resolve().relative_to(REPO_ROOT).as_posix(),
        train_script_sha256=sha256_bytes(data),
        code_revision=git_blob_id(data),
    )


@dataclass(frozen=True)
class ModelSpec:
    """What a training script knows about its model besides the fitted pipeline."""

    name: str
    version: str
    description: str
    released_at: str
    script: Path
    dataset: str
    source: str
    seed: int
    primary_metric: str
    intended_use: str
    limitations: str


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline plus the exact data it was fitted and evaluated on."""

    pipeline: Any
    features: list[Feature]
    output: ClassificationOutput | RegressionOutput
    fingerprint_sha256: str
    rows: int
    train_rows: list[Instance]
    test_rows: list[Instance]
    test_targets: list[str] | FloatArray
    golden_rows: list[Instance]
    onnx_options: Any = None


def build_artifacts(spec: ModelSpec, model: TrainedModel) -> tuple[bytes, Manifest, GoldenSet, str]:
    """Export, check and describe a trained model. Returns (model.onnx, manifest, golden, card)."""
    onnx_bytes = export_onnx(model.pipeline, model.features, name=spec.name, options=model.onnx_options)
    sess = session(onnx_bytes)
    golden_spec = GoldenSpec()
    features, output = model.features, model.output

    train_pred = predict_onnx(sess, output, model.train_rows, features)
    test_pred = predict_onnx(sess, output, model.test_rows, features)
    golden_pred = predict_onnx(sess, output, model.golden_rows, features)
    for rows, pred, what in (
        (model.train_rows, train_pred, "train split"),
        (model.test_rows, test_pred, "test split"),
        (model.golden_rows, golden_pred, "golden set"),
    ):
        assert_close(pred, predict_sklearn(model.pipeline, output, rows, features), golden_spec, context=what)

    if isinstance(output, ClassificationOutput):
        metrics = classification_metrics(output.labels, [str(t) for t in model.test_targets], test_pred)
        assert train_pred.labels is not None
        output_baseline: NumericBaseline | CategoricalBaseline = categorical_baseline(list(train_pred.labels))
    else:
        metrics = regression_metrics(np.asarray(model.test_targets, dtype=np.float64), test_pred)
        assert train_pred.values is not None
        output_baseline = numeric_baseline([sig(float(v)) for v in train_pred.values])

    sha = sha256_bytes(onnx_bytes)
    manifest = Manifest(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        sha256=sha,
        extra_fields="reject",
        features=features,
        inputs=[ModelInput(name=f.name, dtype=f.dtype, features=[f.name]) for f in features],
        output=output,
        metrics=metrics,
        primary_metric=spec.primary_metric,
        training=Training(
            dataset=spec.dataset,
            source=spec.source,
            fingerprint_sha256=model.fingerprint_sha256,
            rows=model.rows,
            train_rows=len(model.train_rows),
            test_rows=len(model.test_rows),
            seed=spec.seed,
            library_versions=library_versions(),
        ),
        lineage=lineage(spec.script, spec.released_at),
        baselines=Baselines(
            features={f.name: feature_baseline(f, model.train_rows) for f in features},
            output=output_baseline,
        ),
        golden=golden_spec,
    )
    golden = GoldenSet(
        model_name=spec.name,
        model_version=spec.version,
        model_sha256=sha,
        cases=[
            GoldenCase(instance=dict(row), expected=golden_expected(output, golden_pred, i))
            for i, row in enumerate(model.golden_rows)
        ],
    )
    return onnx_bytes, manifest, golden, model_card(spec, manifest, len(onnx_bytes))


def model_card(spec: ModelSpec, manifest: Manifest, model_size: int) -> str:
    t = manifest.training
    lines = [
        f"# Model card: {manifest.name} {manifest.version}",
        "",
        manifest.description,
        "",
        f"- Released: {manifest.lineage.created_at}",
        f"- Model file: `{manifest.model_file}` ({model_size} bytes, sha256 `{manifest.sha256}`)",
        f"- Trained by: `{manifest.lineage.train_script}` (git blob `{manifest.lineage.code_revision}`)",
        "",
        "## Intended use",
        "",
        spec.intended_use,
        "",
        "## Data",
        "",
        f"- Dataset: {t.dataset}",
        f"- Source: `{t.source}`",
        f"- Rows: {t.rows} (train {t.train_rows}, test {t.test_rows}; split seed {t.seed})",
        f"- Fingerprint (sha256 of the canonical CSV of the rows used): `{t.fingerprint_sha256}`",
        "",
        "## Inputs",
        "",
        "| feature | type | nullable | allowed values | description |",
        "|---|---|---|---|---|",
    ]
    for f in manifest.features:
        allowed = ", ".join(f.categories) if f.categories else f"[{f.minimum:g}, {f.maximum:g}]"
        lines.append(
            f"| `{f.name}` | {f.dtype} | {'yes' if f.nullable else 'no'} | {allowed} | {f.description} |"
        )
    out = manifest.output
    lines += ["", "## Output", ""]
    if isinstance(out, ClassificationOutput):
        lines.append(
            f"Classification: `label` is one of {', '.join(out.labels)}, with per-class probabilities."
        )
    else:
        unit = f" ({out.unit})" if out.unit else ""
        lines.append(f"Regression: `{out.name}`{unit}.")
    lines += [
        "",
        "## Metrics (held-out test split)",
        "",
        "| metric | value | better |",
        "|---|---|---|",
    ]
    for m in manifest.metrics:
        primary = " (primary)" if m.name == manifest.primary_metric else ""
        lines.append(f"| {m.name}{primary} | {m.value:g} | {'higher' if m.higher_is_better else 'lower'} |")
    lines += ["", "## Limitations", "", spec.limitations, ""]
    return "\n".join(lines)


def write_artifacts(
    out_dir: Path, onnx_bytes: bytes, manifest: Manifest, golden: GoldenSet, card: str
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / manifest.model_file).write_bytes(onnx_bytes)
    (out_dir / MANIFEST_FILE).write_text(dump_json(as_json(manifest)), encoding="utf-8", newline="\n")
    (out_dir / manifest.golden.file).write_text(dump_json(as_json(golden)), encoding="utf-8", newline="\n")
    (out_dir / MODEL_CARD_FILE).write_text(card, encoding="utf-8", newline="\n")


def run(
    argv: Sequence[str] | None,
    spec: ModelSpec,
    train: Callable[[ModelSpec], TrainedModel],
) -> Path:
    """CLI entry point shared by the training scripts: `train.py [--out DIR]`."""
    parser = argparse.ArgumentParser(description=f"Train and export the {spec.name!r} example model.")
    parser.add_argument(
        "--out",
        type=Path,
        default=spec.script.parent,
        help="output directory (default: the script's directory)",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    onnx_bytes, manifest, golden, card = build_artifacts(spec, train(spec))
    write_artifacts(out_dir, onnx_bytes, manifest, golden, card)
    metrics = ", ".join(f"{m.name}={m.value:g}" for m in manifest.metrics)
    print(f"{manifest.name} {manifest.version}: {len(onnx_bytes)} bytes, {metrics} -> {out_dir}")
    return out_dir
