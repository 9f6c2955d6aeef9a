"""Build the OpenAPI document of each model (run by `make openapi`; never shipped, never at import).

    onnxlambda openapi                 # write models/<name>/openapi.json for every model
    onnxlambda openapi --check         # exit 1 if a committed document is stale

models/openapi.lock.json pins CONTRACT_VERSION to the API's shape: a fingerprint of the documents
built for two fixed reference models (onnxlambda_cli.openapi.reference), so adding, importing or
retraining a model never needs a bump, and changing the API always does. Writing documents while
the shape changed under the locked CONTRACT_VERSION is refused, by the rule in
onnxlambda_cli/openapi/document.py.

The routes come from the API function's Powertools resolver; the schemas and examples from each
model's manifest and golden set (onnxlambda_cli.openapi.document.build_document). The model layer ships the
document beside the manifest, and GET /openapi.json serves it verbatim.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from onnxlambda.codecs.v2 import V2Model
from onnxlambda.contract.manifest import OPENAPI_FILE, dump_json, load_golden
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from onnxlambda_cli.openapi.document import CONTRACT_VERSION, build_document
from onnxlambda_cli.openapi.reference import api_shape

ROOT = Path(__file__).resolve().parents[3]  # the repository (cli/onnxlambda_cli/openapi/<this file>)
MODELS = ROOT / "models"
LOCK = MODELS / "openapi.lock.json"
STALE = "is stale: regenerate with `make openapi` and bump info.version (CONTRACT_VERSION) by the rule"
UNBUMPED = (
    "the contract changed but CONTRACT_VERSION is still {version}: bump it in "
    "cli/onnxlambda_cli/openapi/document.py by the rule there (MAJOR breaks a caller, MINOR adds, "
    "PATCH documents), then run `make openapi` again"
)


def _routes_skeleton() -> dict[str, Any]:
    # Importing the handler loads a model (ONNXLAMBDA_MODEL_DIR); any shipped model will do for the routes.
    os.environ.setdefault("ONNXLAMBDA_MODEL_DIR", str(MODELS / "penguins"))
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from functions.api.app import app

    skeleton: dict[str, Any] = json.loads(app.get_openapi_json_schema(title="onnxlambda", version="0"))
    return skeleton


def generate(model_dir: Path) -> str:
    """The document for the model in `model_dir`, as the committed file's text."""
    defaults = Settings.from_env()
    runtime = ModelRuntime.load(model_dir)
    service = Service(runtime, defaults)
    golden = load_golden(model_dir, runtime.manifest)
    doc = build_document(
        _routes_skeleton(),
        runtime.manifest,
        golden,
        V2Model(service).metadata(),
        max_rows=defaults.max_rows,
    )
    return dump_json(doc)


def model_dirs() -> list[Path]:
    return sorted(p.parent for p in MODELS.glob("*/manifest.json"))


def read_lock(lock: Path = LOCK) -> dict[str, Any]:
    if not lock.exists():
        return {"contract_version": None, "api_shape": None}
    data: dict[str, Any] = json.loads(lock.read_text())
    return data


def current_shape() -> str:
    return api_shape(_routes_skeleton(), max_rows=Settings.from_env().max_rows)


def update(texts: dict[Path, str], shape: str, lock: Path = LOCK, version: str = CONTRACT_VERSION) -> int:
    """Write the documents and the lock, unless the API's shape changed without a version bump."""
    locked = read_lock(lock)
    if shape != locked.get("api_shape") and locked.get("contract_version") == version:
        print(UNBUMPED.format(version=version), file=sys.stderr)
        return 1
    for path, text in texts.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    lock.write_text(dump_json({"contract_version": version, "api_shape": shape}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a committed document differs")
    parser.add_argument("model_dirs", nargs="*", type=Path, help="default: every models/<name>")
    args = parser.parse_args(argv)
    dirs = args.model_dirs or model_dirs()
    texts = {model_dir / OPENAPI_FILE: generate(model_dir) for model_dir in dirs}
    shape = current_shape()
    if not args.check:
        return update(texts, shape)
    stale = [path for path, text in texts.items() if not path.exists() or path.read_text() != text]
    for path in stale:
        print(f"{path} {STALE}", file=sys.stderr)
    locked = read_lock()
    if (locked.get("contract_version"), locked.get("api_shape")) != (CONTRACT_VERSION, shape):
        print(f"{LOCK} does not lock the current API shape at {CONTRACT_VERSION}: {STALE}", file=sys.stderr)
        return 1
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
