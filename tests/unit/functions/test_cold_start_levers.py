"""What keeps the cold start short: a tracer that imports nothing when off, lazy package inits."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Tracer
from lazy_init import lazy_source

from onnxlambda import settings
from onnxlambda.serving.tracing import NoOpProvider, make_tracer, sdk_tracing_enabled
from onnxlambda.settings import ort_threads
from tests.conftest import ROOT

CORE = ROOT / "layers" / "core"


def _python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(CORE), str(ROOT)]), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({"POWERTOOLS_TRACE_DISABLED": "true", "LAMBDA_TASK_ROOT": "/var/task"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, False),  # outside Lambda: no daemon to talk to
        (
            {"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "1"},
            False,
        ),
        ({"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task"}, True),
    ],
)
def test_sdk_tracing_follows_powertools_rules(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool
) -> None:
    for name in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert sdk_tracing_enabled() is enabled


def test_disabled_tracer_never_imports_the_xray_sdk() -> None:
    # GIVEN SDK tracing off (the template's default) in a fresh interpreter
    code = (
        "import sys; from onnxlambda.serving.tracing import make_tracer; t = make_tracer()\n"
        "@t.capture_lambda_handler(capture_response=False)\n"
        "def handler(event, context): return {'ok': event}\n"
        "print(handler(1, None), 'aws_xray_sdk.core' in sys.modules, 'botocore.session' in sys.modules)"
    )
    # WHEN the tracer is built and a decorated handler runs
    out = _python(code, POWERTOOLS_TRACE_DISABLED="true", LAMBDA_TASK_ROOT="/var/task")
    # THEN the handler answers and neither the X-Ray SDK nor botocore was imported
    assert out == "{'ok': 1} False False"


def test_disabled_tracer_keeps_the_tracer_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = make_tracer()
    assert isinstance(tracer, Tracer)
    assert isinstance(tracer.provider, NoOpProvider)

    @tracer.capture_method
    def double(x: int) -> int:
        return 2 * x

    tracer.put_annotation("k", "v")
    assert double(21) == 42


# -- lazy package __init__ (layers/core/lazy_init.py, applied at layer build time) ---------------

REEXPORTS = '''"""A package."""

from pkg.a import One, Two as Deux
from .b import Three

__all__ = ["One", "Deux", "Three"]
'''


def _write_package(root: Path, init: str) -> None:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    (pkg / "a.py").write_text("One, Two = 'one', 'two'\n")
    (pkg / "b.py").write_text("Three = 'three'\n")
    (pkg / "c.py").write_text("from pkg import a\nVALUE = a.One\n")


def test_lazy_init_exports_the_same_names_and_imports_each_on_first_use(tmp_path: Path) -> None:
    # GIVEN a package whose __init__ only re-exports, rewritten lazily
    _write_package(tmp_path, lazy_source(REEXPORTS, "pkg"))
    code = (
        "import sys, pkg\n"
        "before = sorted(m for m in sys.modules if m.startswith('pkg.'))\n"
        "from pkg import Three\n"
        "from pkg.c import VALUE\n"
        "print(before, Three, pkg.Deux, VALUE, sorted(pkg.__all__), 'One' in dir(pkg))"
    )
    # WHEN it is imported and used the usual ways (names, submodules, from-imports of submodules)
    out = _python(code, PYTHONPATH=str(tmp_path))
    # THEN nothing loads until used, and every name resolves as before
    assert out == "[] three two one ['Deux', 'One', 'Three'] True"


def test_lazy_init_keeps_the_docstring_and_is_valid_python() -> None:
    source = lazy_source(REEXPORTS, "pkg")
    assert ast.get_docstring(ast.parse(source)) == "A package."


@pytest.mark.parametrize(
    "init",
    [
        "from pkg.a import One\nprint('side effect')\n",
        "from pkg.a import *\n",
        "from pkg.a import One\n__all__ = ['One', 'Missing']\n",
    ],
)
def test_lazy_init_refuses_an_init_that_does_more_than_re_export(init: str) -> None:
    # GIVEN an __init__ with side effects, a star import, or an __all__ naming what it never imports
    # THEN the layer build fails instead of silently changing what the package does
    with pytest.raises(ValueError, match="pkg"):
        lazy_source(init, "pkg")


def test_lazy_init_accepts_the_pinned_powertools_packages() -> None:
    # GIVEN the Powertools version pinned in layers/core/requirements.txt (installed in the dev venv)
    import aws_lambda_powertools

    site = Path(aws_lambda_powertools.__file__).parent.parent
    for package in ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes"):
        init = site.joinpath(*package.split("."), "__init__.py").read_text()
        # THEN both __init__ files are pure re-exports the build can make lazy
        assert "def __getattr__" in lazy_source(init, package)


# -- onnxruntime threads matched to the memory size (template parameter OrtIntraOpThreads) -------


@pytest.mark.parametrize(
    ("raw", "memory_mb", "threads"),
    [
        ("", 1024, 1),
        ("3", 1024, 3),
        ("auto", 128, 1),
        ("auto", 1769, 1),
        ("auto", 3538, 2),
        ("auto", 10240, 5),
    ],
)
def test_ort_threads_auto_follows_the_vcpus_of_the_memory_size(
    raw: str, memory_mb: int, threads: int
) -> None:
    # GIVEN Lambda's one vCPU per 1,769 MB THEN auto gives one thread per whole vCPU, never zero
    value = settings.get("ONNXLAMBDA_ORT_INTRA_OP_THREADS", {"ONNXLAMBDA_ORT_INTRA_OP_THREADS": raw})
    assert ort_threads(value, memory_mb) == threads
