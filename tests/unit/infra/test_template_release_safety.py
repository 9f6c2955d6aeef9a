"""Release safety (issue 15) in the generated CloudFormation: the shadow challenger's layer, switch,
alarm and releases; the pre-traffic replay's settings and its conditional read access to the capture."""

from __future__ import annotations

import functools
import json
from typing import Any

from onnxlambda.monitoring import metrics as names
from tests.conftest import ROOT
from tests.unit.infra.translate import translate

VARIANTS: list[tuple[str, ...]] = [
    ("template.yaml",),
    ("template.yaml", "ChallengerLayer.Uri=s3://artifacts/challenger-with-another-model"),
    ("template.yaml", "ShadowSampleRate=0.5"),
]


@functools.cache
def transformed() -> list[dict[str, Any]]:
    return translate(VARIANTS)


def version_of(resources: dict[str, Any]) -> str:
    [version] = [k for k in resources if k.startswith("ApiFunctionVersion")]
    return version


def test_the_api_function_carries_the_challenger_layer_and_its_switch() -> None:
    resources = transformed()[0]
    api = resources["ApiFunction"]["Properties"]
    layers = [ref["Ref"] for ref in api["Layers"]]
    # THEN core, model and challenger layers, in that order (Globals first): 3 of Lambda's 5
    assert [name.rstrip("0123456789abcdef") for name in layers] == [
        "CoreLayer",
        "ModelLayer",
        "ChallengerLayer",
    ]
    assert resources[layers[2]]["Properties"]["Description"].startswith("shadow challenger")
    env = api["Environment"]["Variables"]
    assert env["ONNXLAMBDA_SHADOW_SAMPLE_RATE"] == {"Ref": "ShadowSampleRate"}
    assert env["ONNXLAMBDA_SHADOW_BUDGET_MS"] == {"Ref": "ShadowBudgetMs"}
    assert env["ONNXLAMBDA_CHALLENGER_DIR"] == "/opt/challenger"
    # AND every function has the same one list of layers (Globals): the hook checks a version with
    # exactly its layers; only the API function ever loads the challenger (functions/api/observe.py)
    for name in ("BatchFunction", "MonitorFunction", "PreTrafficHook"):
        assert [ref["Ref"] for ref in resources[name]["Properties"]["Layers"]] == layers, name


def test_shadow_is_off_by_default() -> None:
    template = (ROOT / "template.yaml").read_text()
    block = template.split("\n  ShadowSampleRate:\n", 1)[1].split("\n  ShadowBudgetMs:", 1)[0]
    assert "    Default: 0\n" in block


def test_the_disagreement_alarm_is_a_rate_over_enough_rows() -> None:
    alarm = transformed()[0]["ShadowDisagreementAlarm"]["Properties"]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    watched = {q["MetricStat"]["Metric"]["MetricName"] for q in queries.values() if "MetricStat" in q}
    assert watched == {names.SHADOW_ROWS, names.SHADOW_DISAGREEMENTS, names.SHADOW_REFUSED}
    expression = queries["rate"]["Expression"]
    assert expression.startswith("IF(FILL(scored, 0) + FILL(refused, 0) >= 50, 100 * ")
    assert alarm["Threshold"] == {"Ref": "ShadowDisagreementThresholdPercent"}
    assert alarm["TreatMissingData"] == "notBreaching"  # no shadow, no alarm
    assert alarm["AlarmActions"] == [{"Ref": "ModelQualityTopic"}]
    # AND it is not one of the canary's rollback alarms: a challenger never gates the champion
    group = transformed()[0]["ApiFunctionDeploymentGroup"]["Properties"]
    assert "ShadowDisagreementAlarm" not in json.dumps(group["AlarmConfiguration"])


def test_the_hook_replays_only_when_asked_and_reads_only_the_capture() -> None:
    resources = transformed()[0]
    env = resources["PreTrafficHook"]["Properties"]["Environment"]["Variables"]
    assert env["ONNXLAMBDA_CAPTURE_BUCKET"] == {"Ref": "CaptureBucket"}
    assert env["ONNXLAMBDA_CAPTURE_PREFIX"] == "capture/"
    assert env["ONNXLAMBDA_REPLAY_ROWS"] == {"Ref": "PreTrafficReplayRows"}
    template = (ROOT / "template.yaml").read_text()
    block = template.split("\n  PreTrafficReplayRows:\n", 1)[1].split(
        "\n  PreTrafficReplayLookbackHours:", 1
    )[0]
    assert "    Default: 0\n" in block  # off by default
    # THEN its read access is a separate policy on the hook's generated role, present only while on
    policy = resources["PreTrafficReplayCaptureRead"]
    assert policy["Condition"] == "PreTrafficReplayOn"
    assert policy["Properties"]["Roles"] == [{"Ref": "PreTrafficHookRole"}]
    assert resources["PreTrafficHookRole"]["Type"] == "AWS::IAM::Role"
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::GetAtt": ["CaptureBucket", "Arn"]},
            "Condition": {"StringLike": {"s3:prefix": ["capture/*"]}},
        },
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${CaptureBucket.Arn}/capture/*"},
        },
    ]
    assert "PreTrafficReplayOn: !Not [!Equals [!Ref PreTrafficReplayRows, 0]]" in template
