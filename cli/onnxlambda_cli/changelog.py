"""Write a model's CHANGELOG entry from two manifests: what changed between versions.

    onnxlambda changelog git:HEAD~1 models/penguins/manifest.json --why "retrained on 2026 data"
    onnxlambda changelog old/manifest.json models/penguins/manifest.json
    onnxlambda changelog --initial models/penguins/manifest.json

The entry states the facts the manifests hold - model file sha256, training data fingerprint and
size, features and their contract, output, metrics with deltas, library versions, training
script - so a version stays explainable months later. The reason ("why") is the one thing a
manifest cannot know: pass it with --why, or the entry says it is missing. Paste the entry at the
top of models/<name>/CHANGELOG.md; a test keeps every shipped manifest version in its changelog.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (cli/onnxlambda_cli/<this file>)
Manifest = dict[str, Any]


def load(ref: str, repo: Path = ROOT) -> Manifest:
    """A manifest from a path, or from git as `git:<rev>:<path>` / `git:<rev>` (same path as new)."""
    if ref.startswith("git:"):
        rev, _, path = ref[4:].partition(":")
        out = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True, check=False
        )
        if out.returncode:
            raise SystemExit(f"cannot read {path} at {rev}: {out.stderr.strip()}")
        manifest: Manifest = json.loads(out.stdout)
        return manifest
    loaded: Manifest = json.loads(Path(ref).read_text())
    return loaded


def _short(sha: str) -> str:
    return sha[:12]


def _feature_contract(feature: dict[str, Any]) -> str:
    parts = [str(feature["dtype"])]
    if feature.get("categories") is not None:
        parts.append("{" + ", ".join(feature["categories"]) + "}")
    if feature.get("minimum") is not None or feature.get("maximum") is not None:
        parts.append(f"[{feature.get('minimum')}, {feature.get('maximum')}]")
    parts.append("nullable" if feature.get("nullable") else "required")
    return " ".join(parts)


def feature_changes(old: Manifest, new: Manifest) -> list[str]:
    before = {f["name"]: f for f in old["features"]}
    after = {f["name"]: f for f in new["features"]}
    lines = [f"added `{n}` ({_feature_contract(after[n])})" for n in after if n not in before]
    lines += [f"removed `{n}`" for n in before if n not in after]
    for name, feature in after.items():
        was, now = _feature_contract(before.get(name, feature)), _feature_contract(feature)
        if name in before and was != now:
            lines.append(f"`{name}`: {was} -> {now}")
    if [n for n in before if n in after] != [n for n in after if n in before]:
        lines.append("feature order changed")
    return lines


def metric_changes(old: Manifest, new: Manifest) -> list[str]:
    before = {m["name"]: m["value"] for m in old["metrics"]}
    lines = []
    for metric in new["metrics"]:
        name, value = metric["name"], metric["value"]
        arrow = "higher is better" if metric.get("higher_is_better", True) else "lower is better"
        if name not in before:
            lines.append(f"{name} {value:g} (new metric; {arrow})")
        elif before[name] != value:
            lines.append(f"{name} {value:g} (was {before[name]:g}, {value - before[name]:+.4g}; {arrow})")
        else:
            lines.append(f"{name} {value:g} (unchanged)")
    lines += [
        f"{name} dropped (was {v:g})"
        for name, v in before.items()
        if name not in {m["name"] for m in new["metrics"]}
    ]
    return lines


def library_changes(old: Manifest, new: Manifest) -> list[str]:
    before, after = old["training"]["library_versions"], new["training"]["library_versions"]
    return [
        f"{lib} {after.get(lib, 'removed')} (was {before.get(lib, 'absent')})"
        for lib in sorted(set(before) | set(after))
        if before.get(lib) != after.get(lib)
    ]


def entry(new: Manifest, old: Manifest | None = None, why: str | None = None) -> str:
    """One CHANGELOG.md section, newest model version first."""
    training, lineage = new["training"], new["lineage"]
    lines = [f"## {new['version']} - {lineage['created_at'][:10]}", ""]
    lines.append(f"- **Why:** {why or 'NOT GIVEN - say why this version exists before releasing it.'}")
    if old is None:
        description = new.get("description", "")
        lines.append(f"- First release of `{new['name']}`" + (f": {description}" if description else "."))
    else:
        lines.append(f"- Replaces {old['version']} (model.onnx `{_short(old['sha256'])}`).")
    lines.append(f"- model.onnx sha256 `{new['sha256']}`")
    data = (
        f"{training['dataset']}, {training['rows']} rows ({training['train_rows']} train / "
        f"{training['test_rows']} test, seed {training['seed']}), "
        f"fingerprint `{_short(training['fingerprint_sha256'])}`"
    )
    if old is not None and old["training"]["fingerprint_sha256"] != training["fingerprint_sha256"]:
        prev = old["training"]
        data += f" - **changed** from {prev['rows']} rows, fingerprint `{_short(prev['fingerprint_sha256'])}`"
    elif old is not None:
        data += " (unchanged)"
    lines.append(f"- Training data: {data}")
    if old is None:
        lines.append(
            "- Features: " + ", ".join(f"`{f['name']}` ({_feature_contract(f)})" for f in new["features"])
        )
    else:
        changes = feature_changes(old, new)
        lines.append("- Features: " + ("; ".join(changes) if changes else "unchanged"))
        if old["output"] != new["output"]:
            lines.append(f"- Output: {json.dumps(old['output'])} -> {json.dumps(new['output'])}")
    metrics = (
        metric_changes(old or {"metrics": []}, new)
        if old
        else [f"{m['name']} {m['value']:g}" for m in new["metrics"]]
    )
    if new["metrics"]:
        lines.append(
            f"- Metrics (held-out test set, primary `{new['primary_metric']}`): " + "; ".join(metrics)
        )
    else:
        lines.append("- Metrics: none (no held-out test set was given)")
    if old is not None:
        libs = library_changes(old, new)
        lines.append("- Libraries: " + ("; ".join(libs) if libs else "unchanged"))
    if lineage.get("train_script"):
        lines.append(
            f"- Trained by `{lineage['train_script']}` (git blob `{_short(lineage['code_revision'])}`, "
            f"sha256 `{_short(lineage['train_script_sha256'])}`)"
        )
    elif lineage.get("source_file"):
        lines.append(
            f"- Imported from `{lineage['source_file']}` by `onnxlambda import` (served byte for byte)"
        )
    return "\n".join(lines) + "\n"


def new_changelog(manifest: Manifest, why: str | None) -> str:
    """A model's CHANGELOG.md with its first entry (`onnxlambda import` writes it for a new model)."""
    name = manifest["name"]
    return (
        f"# {name} model changelog\n\n"
        "Newest first. One section per released model version, written with\n"
        f'`make changelog MODEL={name} OLD=git:<previous release commit> WHY="..."` (onnxlambda changelog)\n'
        "from the old and new manifest.json, then edited where the reason needs more than a sentence.\n"
        "A test keeps the current manifest's version and sha256 in this file.\n\n"
        + entry(manifest, None, why)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onnxlambda changelog", description=__doc__.split("\n")[0])
    parser.add_argument("old", nargs="?", help="previous manifest: a path, git:<rev>:<path> or git:<rev>")
    parser.add_argument("new", help="the manifest being released")
    parser.add_argument("--initial", action="store_true", help="first version: no previous manifest")
    parser.add_argument("--why", help="the reason for this version, in one sentence")
    args = parser.parse_args(argv)
    if not args.initial and not args.old:
        parser.error("give the previous manifest, or --initial for a first release")
    old = None
    if not args.initial:
        ref = args.old
        if ref.startswith("git:") and ref.count(":") == 1:
            ref = f"{ref}:{Path(args.new).resolve().relative_to(ROOT)}"
        old = load(ref)
    sys.stdout.write(entry(load(args.new), old, args.why))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
