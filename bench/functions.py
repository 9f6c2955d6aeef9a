"""The functions under test: the built API function and the two baselines, as BuiltFunctions.

The baselines are never in template.yaml: each is a BuiltFunction constructed here from its code
directory plus the same core and model layer directories the API function gets, so all three
load the same model with the same numpy and onnxruntime. FastAPI and Mangum live in a bench-only
layer directory installed from bench/requirements-fastapi.txt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from devtools.rie import BUILD_DIR, BuiltFunction

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
BASELINES = BENCH / "baselines"
FASTAPI_REQUIREMENTS = BENCH / "requirements-fastapi.txt"
FASTAPI_LAYER = OUT / "layers" / "fastapi"

API, MINIMAL, FASTAPI = "api", "minimal", "fastapi"
LABELS = {API: "onnxlambda API", MINIMAL: "minimal handler", FASTAPI: "FastAPI + Mangum"}


def api_function(build_dir: Path = BUILD_DIR) -> BuiltFunction:
    return BuiltFunction.from_build("ApiFunction", build_dir)


def baseline_function(
    name: str, build_dir: Path = BUILD_DIR, fastapi_layer: Path = FASTAPI_LAYER
) -> BuiltFunction:
    """A baseline with the API function's layers, environment, memory and timeout."""
    api = api_function(build_dir)
    extra = [fastapi_layer] if name == FASTAPI else []
    return replace(
        api,
        logical_id=f"{name.capitalize()}Baseline",
        code_dir=BASELINES / name,
        handler="app.lambda_handler",
        layer_dirs=extra + api.layer_dirs,
    )


def functions(names: tuple[str, ...], build_dir: Path = BUILD_DIR) -> dict[str, BuiltFunction]:
    return {n: api_function(build_dir) if n == API else baseline_function(n, build_dir) for n in names}


def ensure_fastapi_layer(target: Path = FASTAPI_LAYER, python: str = sys.executable) -> Path:
    """Install the pinned FastAPI + Mangum wheels for the Lambda platform, once per pin list."""
    stamp = target / ".requirements-sha256"
    wanted = hashlib.sha256(FASTAPI_REQUIREMENTS.read_bytes() + Path(__file__).read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted:
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            "3.13",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "--target",
            str(target / "python"),
            "-r",
            str(FASTAPI_REQUIREMENTS),
        ],
        check=True,
        env={**os.environ, "PIP_NO_COMPILE": "1"},
    )
    # Same treatment as the core layer gets (strip.sh, then bytecode), so the comparison stays like
    # for like.
    subprocess.run(["sh", str(ROOT / "layers" / "core" / "strip.sh"), str(target / "python")], check=True)
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(wanted)
    return target


def unzipped_size(fn: BuiltFunction) -> dict[str, int]:
    """Bytes on disk (file sizes, unzipped) of the function code and each of its layers."""
    parts = {"code": _tree_bytes(fn.code_dir)}
    for layer in fn.layer_dirs:
        parts[layer.name] = _tree_bytes(layer)
    return parts


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
