"""What the SAM transform makes of template.yaml: aliases, canary, alarms on the new version, hook.

CloudFormation runs the same transform at deploy time; here it runs offline with the SAM venv's
samtranslator (devtools/sam_transform.py), so these assertions are about the generated
resources themselves, not about how the YAML is spelled.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.infra.translate import of_type, source_template, translate

HOOK = "PreTrafficHook"
# Event sources through which a function serves predictions: these must call an alias.
SERVING_EVENTS = {"HttpApi", "Api", "S3", "SQS", "Kinesis", "DynamoDB"}

# SAM's own version hash, without the build stamp: what it misses is why `make build` stamps.
UNSTAMPED_CHANGES = [
    ("ApiFunction.Uri=s3://artifacts/new-handler-code", True),
    ("ModelLayer.Uri=s3://artifacts/model-layer-with-another-model", False),
    ("MaxRows=500", False),
    ("RedactFields=sex", False),
]
DEPLOYMENT_TYPES = ["AllAtOnce", "Canary10Percent5Minutes", "Linear10PercentEvery1Minute"]


@functools.cache
def _all_variants() -> dict[tuple[str, ...], dict[str, Any]]:
    """Every transform these tests look at, in one SAM process (importing samtranslator is slow)."""
    variants: list[tuple[str, ...]] = [("template.yaml",)]
    variants += [("template.yaml", change) for change, _ in UNSTAMPED_CHANGES]
    variants += [("template.yaml", f"DeploymentType={d}") for d in DEPLOYMENT_TYPES]
    return dict(zip(variants, translate(variants), strict=True))


def transformed(*args: str, template: str = "template.yaml") -> dict[str, Any]:
    return _all_variants()[(template, *args)]


def new_version(resources: dict[str, Any], function: str = "ApiFunction") -> str:
    [version] = [k for k in of_type(resources, "AWS::Lambda::Version") if k.startswith(f"{function}Version")]
    return version


def test_every_serving_function_publishes_through_the_live_alias_and_is_only_invoked_through_it() -> None:
    source = source_template()["Resources"]
    serving = [
        name
        for name, r in source.items()
        if r["Type"] == "AWS::Serverless::Function"
        and {e["Type"] for e in (r["Properties"].get("Events") or {}).values()} & SERVING_EVENTS
    ]
    assert "ApiFunction" in serving
    resources = transformed()
    for name in serving:
        # THEN each has a `live` alias on its newest version...
        alias = resources[f"{name}Aliaslive"]["Properties"]
        assert alias["Name"] == "live"
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [new_version(resources, name), "Version"]}
    # ...and every invoke permission (API Gateway, S3, ...) is on an alias, never the bare function
    for name, permission in of_type(resources, "AWS::Lambda::Permission").items():
        target = permission["Properties"]["FunctionName"]
        assert isinstance(target, dict), (name, target)
        assert target.get("Ref", "").endswith("Aliaslive"), (name, target)


def test_api_routes_invoke_the_alias() -> None:
    # GIVEN the translated API: one greedy route carries every path and method to the function
    paths = transformed()["HttpApi"]["Properties"]["Body"]["paths"]
    assert list(paths) == ["/{proxy+}"]
    # THEN it invokes the `live` alias, the one CodeDeploy shifts
    for operation in paths["/{proxy+}"].values():
        uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert "${ApiFunctionAliaslive}" in uri


@pytest.mark.parametrize("deployment", DEPLOYMENT_TYPES)
def test_deployment_type_comes_from_the_parameter(deployment: str) -> None:
    group = transformed(f"DeploymentType={deployment}")["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": deployment}
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]


def test_samconfig_sets_a_canary_for_prod_and_all_at_once_for_dev() -> None:
    text = (ROOT / "samconfig.toml").read_text()
    assert 'parameter_overrides = "Stage=dev LogLevel=DEBUG DeploymentType=AllAtOnce' in text
    assert "Stage=prod LogLevel=INFO DeploymentType=Canary10Percent5Minutes" in text


def test_rollback_alarms_watch_only_the_new_version() -> None:
    resources = transformed()
    version = new_version(resources)
    group = resources["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["AlarmConfiguration"]["Enabled"] is True
    names = [a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]]
    metrics = {}
    for name in names:
        alarm = resources[name]["Properties"]
        metrics[alarm["MetricName"]] = alarm
        # THEN each is a Lambda metric of the `live` alias restricted to the version being deployed
        assert alarm["Namespace"] == "AWS/Lambda"
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "FunctionName": {"Ref": "ApiFunction"},
            "Resource": {"Fn::Sub": "${ApiFunction}:live"},
            "ExecutedVersion": {"Fn::GetAtt": [version, "Version"]},
        }
        # no data from the new version is not a reason to roll back
        assert alarm["TreatMissingData"] == "notBreaching"
    assert set(metrics) == {"Errors", "Throttles", "Duration"}
    assert metrics["Duration"]["ExtendedStatistic"] == "p99"
    assert metrics["Duration"]["Threshold"] == {"Ref": "CanaryP99DurationMs"}
    assert metrics["Errors"]["Statistic"] == metrics["Throttles"]["Statistic"] == "Sum"


def test_pre_traffic_hook_is_wired_to_the_alias_and_checks_the_new_version() -> None:
    resources = transformed()
    version = new_version(resources)
    policy = resources["ApiFunctionAliaslive"]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert policy["BeforeAllowTrafficHook"] == {"Ref": HOOK}
    assert policy["DeploymentGroupName"] == {"Ref": "ApiFunctionDeploymentGroup"}
    hook = resources[HOOK]["Properties"]
    # CodeDeploy's role may only invoke CodeDeployHook_* functions
    assert hook["FunctionName"]["Fn::Sub"].startswith("CodeDeployHook_")
    assert hook["Environment"]["Variables"]["ONNXLAMBDA_TARGET_FUNCTION_VERSION"] == {"Ref": version}
    assert hook["Environment"]["Variables"]["ONNXLAMBDA_EXPECTED_MODEL_SHA256"] == {
        "Fn::FindInMap": ["Release", "Build", "ModelSha256"]
    }
    # it reads the same model layer as the version it checks
    assert hook["Layers"] == resources["ApiFunction"]["Properties"]["Layers"]
    # and is itself deployed plainly: no alias, no deployment group of its own
    assert not [k for k in resources if k.startswith(f"{HOOK}Alias") or k == f"{HOOK}DeploymentGroup"]


def test_hook_role_is_least_privilege() -> None:
    resources = transformed()
    role = resources[hook_role(resources)]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert {(s["Action"], json.dumps(s["Resource"])) for s in statements} == {
        (
            "codedeploy:PutLifecycleEventHookExecutionStatus",
            json.dumps(
                {
                    "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:"
                    "deploymentgroup:${ServerlessDeploymentApplication}/${ApiFunctionDeploymentGroup}"
                }
            ),
        ),
        ("lambda:InvokeFunction", json.dumps({"Ref": new_version(resources)})),
    }
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in statements)
    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    ]


def hook_role(resources: dict[str, Any]) -> str:
    return str(resources[HOOK]["Properties"]["Role"]["Fn::GetAtt"][0])


def test_published_versions_carry_model_and_code() -> None:
    # The stamp `make build` writes into Mappings (tests/unit/infra/test_deploy_contract.py)
    api = transformed()["ApiFunction"]["Properties"]
    names = {"MODEL_VERSION": "ModelVersion", "MODEL_SHA256": "ModelSha256", "CODE_REVISION": "CodeRevision"}
    stamp = {f"ONNXLAMBDA_RELEASE_{k}": {"Fn::FindInMap": ["Release", "Build", v]} for k, v in names.items()}
    assert api["Environment"]["Variables"].items() >= stamp.items()
    version = transformed()[new_version(transformed())]
    # old versions stay when the stack moves on, so there is something to roll back to
    assert version["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize(("change", "publishes"), UNSTAMPED_CHANGES)
def test_sam_alone_publishes_only_for_new_function_code(change: str, publishes: bool) -> None:
    # GIVEN the template without the build stamp (AutoPublishCodeSha256), and one change
    before, after = new_version(transformed()), new_version(transformed(change))
    # THEN SAM's own hash sees new function code only: not a new layer, not a parameter's value
    # (SAM #3820, #1640) - which is why `make build` stamps a digest of all of them
    assert (before != after) is publishes
