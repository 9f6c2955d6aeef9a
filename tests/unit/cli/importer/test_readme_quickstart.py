"""The README's "Bring your own model" quick start runs as written, and models/wine is its output."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
from pathlib import Path

from onnxlambda.contract.manifest import OPENAPI_FILE, ClassificationOutput, load_manifest
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings
from tests.conftest import MODELS, ROOT

EXAMPLE = ROOT / "examples" / "wine"
COMPARED = ["model.onnx", "manifest.json", "golden.json", "MODEL_CARD.md", OPENAPI_FILE]


def quickstart() -> list[str]:
    """The README section's shell commands, one string each (continuation lines joined)."""
    section = (ROOT / "README.md").read_text().split("## Bring your own model\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_quick_start_is_import_serve_curl() -> None:
    # GIVEN the README THEN its quick start is three commands: import, serve the import, call it
    commands = [shlex.split(c) for c in quickstart()]
    assert [c[:2] for c in commands] == [["make", "import"], ["make", "serve"], ["curl", "-s"]]
    assert "MODEL=wine" in commands[1]
    assert f"@{(EXAMPLE / 'request.json').relative_to(ROOT)}" in commands[2]


def test_the_readme_import_line_writes_exactly_the_committed_models_wine(tmp_path: Path) -> None:
    # GIVEN the README's `make import ...` line, expanded by make into the command it runs
    # (make -n prints the recipe without running it)
    words = shlex.split(quickstart()[0])
    printed = subprocess.run(
        ["make", "-n", "-s", *words[1:]], cwd=ROOT, capture_output=True, text=True, check=True
    )
    recipe = printed.stdout[printed.stdout.index("PYTHONPATH=. ") :].replace("\\\n", " ").strip()
    # WHEN it runs, only into a temporary directory and at the committed model's release time
    committed = load_manifest(MODELS / "wine")
    extra = f" --out {shlex.quote(str(tmp_path / 'wine'))} --created-at {committed.lineage.created_at}"
    subprocess.run(["bash", "-c", recipe + extra], cwd=ROOT, check=True, capture_output=True)
    # THEN every served file is byte-for-byte the committed models/wine (which `make model` makes
    # the same way), and model.onnx is the example's own file
    for name in COMPARED:
        assert (tmp_path / "wine" / name).read_bytes() == (MODELS / "wine" / name).read_bytes(), name
    assert (MODELS / "wine" / "model.onnx").read_bytes() == (EXAMPLE / "model.onnx").read_bytes()


def test_the_readme_curl_request_is_answered_by_the_imported_model() -> None:
    # GIVEN models/wine and the request file the README's curl sends
    body = json.loads((EXAMPLE / "request.json").read_text())
    service = Service(ModelRuntime.load(MODELS / "wine"), Settings.from_env())
    # WHEN it is predicted THEN the answer is one of the named classes, slash-named column and all
    [prediction] = service.predict(body)["predictions"]
    out = service.manifest.output
    assert isinstance(out, ClassificationOutput)
    assert out.labels == ["class_0", "class_1", "class_2"]
    assert prediction["label"] in out.labels
    assert "od280/od315_of_diluted_wines" in body["instances"][0]


def test_the_example_export_script_reproduces_the_committed_user_files(tmp_path: Path) -> None:
    # GIVEN examples/wine/export.py (train + export as skl2onnx's docs show)
    spec = importlib.util.spec_from_file_location("wine_export", EXAMPLE / "export.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # WHEN it is re-run into a temporary directory
    module.main(["--out", str(tmp_path)])
    # THEN the model and the CSVs are the committed ones, byte for byte
    for name in ("model.onnx", "reference.csv", "test.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
