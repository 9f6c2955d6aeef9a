"""Which data column feeds which graph input, and where in it.

Exports take their layout from the converter's `initial_types`, never from the data, so the
graph's input list decides (docs/import.md):
- an input named like a data column, [N, 1] or [N], carries that column (skl2onnx's one input
  per DataFrame column, or the string inputs of a ColumnTransformer export);
- every other input is packed: it takes the next columns, in feature order, as many as it is
  wide ([N, 13] takes 13). Inputs are filled in the graph's declaration order, which is how a
  ColumnTransformer selecting by integer position numbers them.
Feature order is `--features` when given, else the MLflow signature's column order, else the
data's header order without the target. Any mismatch is refused with both counts and the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from onnxlambda.contract.manifest import ModelInput
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.graph import INPUT_DTYPES, Tensor


def check_input_types(inputs: Sequence[Tensor]) -> None:
    for tensor in inputs:
        if tensor.type not in INPUT_DTYPES:
            raise ImportInputError(
                f"model input {tensor.describe()} has an element type the server cannot feed; "
                "supported input types: tensor(float), tensor(double), tensor(int64), tensor(string)"
            )
        if tensor.rank not in (1, 2):
            raise ImportInputError(
                f"model input {tensor.describe()} is not tabular; supported shapes are [N] and [N, F]"
            )


def map_columns(inputs: Sequence[Tensor], features: Sequence[str], source: str) -> list[ModelInput]:
    """The manifest's inputs: every graph input with the features it carries, in column order."""
    check_input_types(inputs)
    by_name = set(features)
    named = {t.name for t in inputs if t.name in by_name and t.width == 1}
    remaining = [f for f in features if f not in named]
    packed = [t for t in inputs if t.name not in named]
    widths = {t.name: t.width for t in packed}
    dynamic = [t for t in packed if widths[t.name] is None]
    fixed = sum(w for w in widths.values() if w is not None)
    if len(dynamic) > 1:
        raise ImportInputError(
            f"model inputs {', '.join(t.describe() for t in dynamic)} have no fixed width, so the "
            "columns cannot be split between them: export with a fixed width per input"
        )
    if dynamic:
        widths[dynamic[0].name] = len(remaining) - fixed
    wanted = sum(w or 0 for w in widths.values()) + len(named)
    if wanted != len(features) or (dynamic and len(remaining) - fixed < 1):
        shown = "; ".join(t.describe() for t in inputs)
        raise ImportInputError(
            f"the model's inputs take {wanted if not dynamic else f'at least {fixed + len(named) + 1}'} "
            f"values per row ({shown}) but {source} gives {len(features)} feature columns: "
            f"{', '.join(features)}. Pass --features with the columns the model was trained on, in "
            "its order (and --target for the label column)"
        )
    out: list[ModelInput] = []
    position = 0
    for tensor in inputs:
        dtype = INPUT_DTYPES[tensor.type]
        rank: Literal[1, 2] = 1 if tensor.rank == 1 else 2
        if tensor.name in named:
            out.append(ModelInput(name=tensor.name, dtype=dtype, features=[tensor.name], rank=rank))
            continue
        width = widths[tensor.name] or 0
        carried = remaining[position : position + width]
        position += width
        out.append(ModelInput(name=tensor.name, dtype=dtype, features=carried, rank=rank))
    return out


__all__ = ["check_input_types", "map_columns"]
