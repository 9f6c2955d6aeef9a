"""Writing the model directory: the user's bytes unchanged, the contract files, the OpenAPI document.

Only the importer's own files are (re)written; anything else in the directory (a train.py, a
CHANGELOG.md) is left alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Final

from onnxlambda.contract.manifest import (
    MANIFEST_FILE,
    OPENAPI_FILE,
    GoldenSet,
    Manifest,
    as_json,
    dump_json,
)
from onnxlambda_cli.importer.errors import ImportInputError

MODEL_CARD_FILE: Final = "MODEL_CARD.md"
REPO_ROOT: Final = Path(__file__).resolve().parents[3]  # cli/onnxlambda_cli/importer/<this file>


def write_directory(
    out: Path, model_bytes: bytes, manifest: Manifest, golden: GoldenSet, card: str, *, openapi: bool = True
) -> list[Path]:
    """Write the served files into `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    model = out / manifest.model_file
    model.write_bytes(model_bytes)  # the user's bytes, never re-serialised
    if hashlib.sha256(model.read_bytes()).hexdigest() != manifest.sha256:
        raise ImportInputError(f"{model} did not keep the imported bytes (sha256 differs): is the disk full?")
    written = [model]
    for name, text in (
        (MANIFEST_FILE, dump_json(as_json(manifest))),
        (manifest.golden.file, dump_json(as_json(golden))),
        (MODEL_CARD_FILE, card),
    ):
        (out / name).write_text(text, encoding="utf-8", newline="\n")
        written.append(out / name)
    if openapi:
        written.append(write_openapi(out))
    return written


def write_openapi(model_dir: Path) -> Path:
    """The per-model OpenAPI document, built by the same code as `make openapi`."""
    # The routes come from the API function's module (functions/api/app.py), which lives in the
    # repository beside the editable-installed CLI rather than in the package.
    if importlib.util.find_spec("functions") is None and (REPO_ROOT / "functions" / "api").is_dir():
        sys.path.insert(0, str(REPO_ROOT))
    from onnxlambda_cli.openapi.command import generate

    path = model_dir / OPENAPI_FILE
    path.write_text(generate(model_dir), encoding="utf-8", newline="\n")
    return path


__all__ = ["MODEL_CARD_FILE", "REPO_ROOT", "write_directory", "write_openapi"]
