"""One settings catalogue: every environment variable in one table, one parser, one reference page."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from onnxlambda import settings
from onnxlambda.batch.config import BatchConfig
from onnxlambda.batch.s3 import S3ClientSettings
from onnxlambda.monitoring.capture import CaptureSettings
from onnxlambda.monitoring.monitor import MonitorSettings
from onnxlambda.settings import BY_NAME, CATALOGUE, SettingError, Settings
from onnxlambda_cli.cloudformation import load_template
from onnxlambda_cli.settings_reference import REFERENCE
from tests.conftest import ROOT


def template_variables() -> dict[str, set[str]]:
    """Every environment variable template.yaml sets, and where."""
    template: dict[str, Any] = load_template((ROOT / "template.yaml").read_text())
    found: dict[str, set[str]] = {}
    functions = {"Globals": template["Globals"]["Function"]}
    functions |= {
        k: r["Properties"]
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    for where, props in functions.items():
        for name in (props.get("Environment") or {}).get("Variables", {}):
            found.setdefault(name, set()).add(where)
    return found


def test_every_variable_the_template_sets_is_in_the_catalogue() -> None:
    # GIVEN the environment of every function in template.yaml THEN each is a catalogued setting
    unknown = {name: sorted(where) for name, where in template_variables().items() if name not in BY_NAME}
    assert unknown == {}, "add these to layers/core/onnxlambda/settings.py CATALOGUE"


def test_the_projects_own_variables_carry_the_prefix() -> None:
    for setting in CATALOGUE:
        assert setting.name.startswith(settings.PREFIX) or setting.kind == "external", setting.name
        assert setting.meaning
        assert setting.used_by


def test_nothing_but_the_catalogue_reads_the_environment() -> None:
    # GIVEN every module that runs on Lambda (the core package and the handlers)
    offenders = []
    for path in [*(ROOT / "layers/core/onnxlambda").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        if path.name == "settings.py" and path.parent.name == "onnxlambda":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # THEN none reads os.environ itself: every variable goes through the one parser
    assert offenders == []


def test_the_reference_page_is_generated_from_the_catalogue() -> None:
    assert REFERENCE.read_text() == settings.reference(), "run `onnxlambda settings`"


def test_unset_or_blank_means_the_default() -> None:
    assert Settings.from_env({}) == Settings.from_env({"ONNXLAMBDA_MAX_ROWS": "  "})
    assert Settings.from_env({}).max_rows == 1000
    assert BatchConfig.from_env({}) == BatchConfig()
    assert S3ClientSettings.from_env({}) == S3ClientSettings()
    assert CaptureSettings.from_env({}) == CaptureSettings()
    assert MonitorSettings.from_env({}) == MonitorSettings()


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("ONNXLAMBDA_MAX_ROWS", "ten", "invalid literal"),
        ("ONNXLAMBDA_CAPTURE_SAMPLE_RATE", "1.5", "within [0, 1]"),
        ("ONNXLAMBDA_MONITORING_ENABLED", "maybe", "true or false"),
        ("ONNXLAMBDA_ORT_INTRA_OP_THREADS", "0", "positive count or auto"),
    ],
)
def test_a_value_that_does_not_parse_names_the_variable(name: str, raw: str, expected: str) -> None:
    with pytest.raises(SettingError) as info:
        settings.get(name, {name: raw})
    assert str(info.value).startswith(f"{name}={raw!r}: ")
    assert expected in str(info.value)


def test_settings_parse_to_their_types() -> None:
    env = {
        "ONNXLAMBDA_REDACT_FIELDS": " sex, island ,,",
        "ONNXLAMBDA_CAPTURE_REDACT_FIELDS": "bill_length_mm",
        "ONNXLAMBDA_CAPTURE_SAMPLE_RATE": "0.25",
        "ONNXLAMBDA_MODEL_DIR": "/tmp/m",
        "ONNXLAMBDA_ORT_INTRA_OP_THREADS": "auto",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538",
        "ONNXLAMBDA_BATCH_ID_COLUMN": "",
    }
    serving = Settings.from_env(env)
    assert (serving.model_dir, serving.redact_fields, serving.ort_intra_op_threads) == (
        Path("/tmp/m"),
        frozenset({"sex", "island"}),
        2,
    )
    assert CaptureSettings.from_env(env) == CaptureSettings(
        0.25, frozenset({"sex", "island", "bill_length_mm"})
    )
    # AND blank means the default, except where the catalogue says set-but-empty means none
    assert Settings.from_env({"ONNXLAMBDA_MAX_ROWS": ""}).max_rows == 1000
    assert BatchConfig.from_env(env).id_column is None
    assert BatchConfig.from_env({}).id_column == "id"
