"""MODEL_CARD.md: a human-readable summary generated from the manifest (and the import's notes)."""

from __future__ import annotations

from collections.abc import Sequence

from onnxlambda.contract.manifest import ClassificationOutput, Feature, Manifest


def model_card(
    manifest: Manifest,
    model_size: int,
    *,
    intended_use: str = "",
    limitations: str = "",
    notes: Sequence[str] = (),
) -> str:
    t, lineage = manifest.training, manifest.lineage
    lines = [f"# Model card: {manifest.name} {manifest.version}", ""]
    if manifest.description:
        lines += [manifest.description, ""]
    lines.append(f"- Released: {lineage.created_at}")
    lines.append(f"- Model file: `{manifest.model_file}` ({model_size} bytes, sha256 `{manifest.sha256}`)")
    if lineage.train_script:
        lines.append(f"- Trained by: `{lineage.train_script}` (git blob `{lineage.code_revision}`)")
    if lineage.source_file:
        lines.append(
            f"- Imported from: `{lineage.source_file}` by `onnxlambda import` "
            "(the served bytes are that file's)"
        )
    lines += [
        "",
        "## Intended use",
        "",
        intended_use or "Not stated (pass `--intended-use` to `onnxlambda import`).",
        "",
        "## Data",
        "",
        f"- Dataset: {t.dataset}",
        f"- Source: `{t.source}`",
        f"- Rows: {t.rows} (reference {t.train_rows}, test {t.test_rows}; seed {t.seed})",
        f"- Fingerprint (sha256 of the canonical CSV of the rows used): `{t.fingerprint_sha256}`",
        "",
        "## Inputs",
        "",
        "| feature | type | nullable | allowed values | model input | description |",
        "|---|---|---|---|---|---|",
    ]
    tensor_of = {name: i for i in manifest.inputs for name in i.features}
    for f in manifest.features:
        i = tensor_of[f.name]
        where = f"`{i.name}`" + (f" column {i.features.index(f.name)}" if len(i.features) > 1 else "")
        lines.append(
            f"| `{_cell(f.name)}` | {f.dtype} | {'yes' if f.nullable else 'no'} | {_allowed(f)} | "
            f"{where} | {_cell(f.description)} |"
        )
    out = manifest.output
    lines += ["", "## Output", ""]
    if isinstance(out, ClassificationOutput):
        classes = ", ".join(out.labels)
        if out.class_values is not None and [str(v) for v in out.class_values] != out.labels:
            classes = ", ".join(f"{n} ({v})" for n, v in zip(out.labels, out.class_values, strict=True))
        probabilities = " with per-class probabilities" if out.probability_tensor else ""
        lines.append(f"Classification: `label` is one of {classes}{probabilities}.")
    else:
        unit = f" ({out.unit})" if out.unit else ""
        lines.append(f"Regression: `{out.name}`{unit}.")
    lines += ["", "## Metrics (held-out test set)", ""]
    if manifest.metrics:
        lines += ["| metric | value | better |", "|---|---|---|"]
        for m in manifest.metrics:
            primary = " (primary)" if m.name == manifest.primary_metric else ""
            lines.append(
                f"| {m.name}{primary} | {m.value:g} | {'higher' if m.higher_is_better else 'lower'} |"
            )
    else:
        lines.append("No test set was given (`--test`): no metrics.")
    if notes:
        lines += ["", "## Notes from the import", ""]
        lines += [f"- {note}" for note in notes]
    lines += ["", "## Limitations", "", limitations or "Not stated (pass `--limitations`).", ""]
    return "\n".join(lines)


def _allowed(f: Feature) -> str:
    if f.categories:
        return ", ".join(_cell(c) for c in f.categories)
    return f"[{f.minimum:g}, {f.maximum:g}]" if f.minimum is not None and f.maximum is not None else "any"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


__all__ = ["model_card"]
