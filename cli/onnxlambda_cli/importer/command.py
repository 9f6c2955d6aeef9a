"""`onnxlambda import MODEL --data REFERENCE.csv [...]`: your exported model, ready to serve.

    onnxlambda import model.onnx --data reference.csv --target species --test test.csv
    onnxlambda import mlflow_model_dir/ --data reference.csv            # MLflow onnx flavor
    make import SOURCE=model.onnx DATA=reference.csv ARGS="--target species"

Writes models/<name>/ (or --out): model.onnx byte for byte as given, manifest.json, golden.json,
MODEL_CARD.md and openapi.json; then `make serve MODEL=<name>` serves it. Exit status 2 with one
line on stderr when the artifacts cannot be imported (what is wrong, and how to fix it).
docs/import.md describes the supported exports and how the contract is derived.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from onnxlambda.contract.manifest import ClassificationOutput
from onnxlambda_cli.importer.api import import_model
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.options import ImportOptions, ImportResult

EXIT_REFUSED = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onnxlambda import",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Supported exports and the rules: docs/import.md",
    )
    p.add_argument("source", type=Path, help="the .onnx file as exported, or an MLflow model directory")
    p.add_argument(
        "--data", type=Path, required=True, help="reference data: a CSV with a header (training data)"
    )
    p.add_argument("--target", help="the column with the label or value (not a feature)")
    p.add_argument("--test", type=Path, help="held-out CSV with the same columns and the target: metrics")
    p.add_argument(
        "--class-names",
        nargs="+",
        metavar="NAME",
        help="names for integer labels, in the model's class order",
    )
    p.add_argument("--name", help="model name, ^[a-z0-9][a-z0-9_-]*$ (default: from the file name)")
    p.add_argument("--version", default="1.0.0", help="model version MAJOR.MINOR.PATCH (default 1.0.0)")
    p.add_argument("--description", default="", help="one sentence: what the model predicts")
    p.add_argument(
        "--features",
        nargs="+",
        metavar="COLUMN",
        help="feature columns in the model's order (default: the header)",
    )
    p.add_argument(
        "--feature-description", action="append", default=[], metavar="COLUMN=TEXT", help="repeatable"
    )
    p.add_argument(
        "--missing-string",
        action="append",
        default=[],
        metavar="COLUMN=TOKEN",
        help="what a missing value of a string column is fed as (the token the pipeline was trained with)",
    )
    p.add_argument(
        "--nullable",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="accept nulls for these columns though the data has none (checked by running the model)",
    )
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="COLUMN=MIN:MAX",
        help="allowed range, instead of the derived one",
    )
    p.add_argument("--output-name", default="prediction", help="a regression value's name in answers")
    p.add_argument(
        "--created-at", help="ISO 8601 release time (default: now); fix it for byte-reproducible output"
    )
    p.add_argument("--out", type=Path, help="output directory (default: models/<name>)")
    p.add_argument(
        "--golden-size", type=int, default=32, help="reference rows in the golden set (default 32)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for choosing the golden rows")
    p.add_argument("--primary-metric", help="default: accuracy (classification), mae (regression)")
    p.add_argument("--dataset", help="what to call the data in the model card (default: the file name)")
    p.add_argument(
        "--data-source", help="where the data came from, for the manifest (default: the file names)"
    )
    p.add_argument("--intended-use", default="", help="for the model card")
    p.add_argument("--limitations", default="", help="for the model card")
    p.add_argument("--why", help="why this model version exists: the first entry of a new CHANGELOG.md")
    return p


def options_from(argv: Sequence[str]) -> ImportOptions:
    args = parser().parse_args(argv)
    return ImportOptions(
        source=args.source,
        data=args.data,
        target=args.target,
        test=args.test,
        class_names=args.class_names,
        name=args.name,
        version=args.version,
        description=args.description,
        features=args.features,
        feature_descriptions=_pairs(args.feature_description, "--feature-description"),
        missing_strings=_pairs(args.missing_string, "--missing-string"),
        nullable=list(args.nullable),
        ranges={k: _range(k, v) for k, v in _pairs(args.range, "--range").items()},
        output_name=args.output_name,
        created_at=args.created_at,
        out=args.out,
        golden_size=args.golden_size,
        seed=args.seed,
        primary_metric=args.primary_metric,
        dataset=args.dataset,
        data_source=args.data_source,
        intended_use=args.intended_use,
        limitations=args.limitations,
        why=args.why,
    )


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        # Split at the LAST "=": column names may hold one ("a=b"), tokens rarely do.
        key, sep, value = item.rpartition("=")
        if not sep or not key:
            raise ImportInputError(f"{flag} takes COLUMN=VALUE, got {item!r}")
        out[key] = value
    return out


def _range(column: str, text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        bounds = (float(low), float(high))
    except ValueError:
        bounds = None
    if not sep or bounds is None or bounds[0] > bounds[1]:
        raise ImportInputError(
            f"--range {column}={text}: expected MIN:MAX with MIN <= MAX, e.g. {column}=0:100"
        )
    return bounds


def summary(result: ImportResult) -> str:
    m = result.manifest
    inputs = ", ".join(f"{i.name}[N,{len(i.features)}]" if i.rank == 2 else f"{i.name}[N]" for i in m.inputs)
    out = m.output
    if isinstance(out, ClassificationOutput):
        probabilities = f", probabilities as {out.probability_format}" if out.probability_tensor else ""
        what = f"classifier, {len(out.labels)} classes ({', '.join(out.labels)}){probabilities}"
    else:
        what = f"regression ({out.name})"
    lines = [
        f"imported {m.name} {m.version} -> {result.out}",
        f"  model.onnx sha256 {m.sha256} (the file as given)",
        f"  {len(m.features)} features into {inputs}; {what}",
        f"  nullable: {', '.join(f.name for f in m.features if f.nullable) or 'none'}; "
        f"golden set: {len(result.golden.cases)} cases",
    ]
    if m.metrics:
        lines.append("  metrics: " + ", ".join(f"{x.name}={x.value:g}" for x in m.metrics))
    lines += [f"  note: {n}" for n in result.notes]
    lines.append(f"serve it: make serve MODEL={m.name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = import_model(options_from(list(sys.argv[1:] if argv is None else argv)))
    except ImportInputError as exc:
        print(f"onnxlambda import: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
