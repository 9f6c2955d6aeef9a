"""The deploy contract: what a stamped build of template.yaml becomes in CloudFormation, per environment.

Each test stamps template.yaml the way `make build` stamps its output (onnxlambda_cli.stamp, with
stand-in digests for the built code and layers) for a samconfig environment, runs SAM's own
transform offline on the result (what CloudFormation runs at deploy time), and asserts on the
generated resources:

- a new function version whenever code, a layer, the model or a setting that reaches a version
  changes - and only for the functions it reaches;
- every function that loads the model moves to a new model together (API, batch, monitor);
- settings that reach a version are pinned, so no deploy can give them other values than the
  digest covers; the unstamped template is refused;
- every alarm's actions are deliverable (topics whose KMS key lets CloudWatch publish);
- no retained or named resource blocks re-creating the stack after a failed create or a delete;
- dev and prod in one account share no layer and no metric.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from onnxlambda_cli import stamp
from tests.conftest import MODELS, ROOT
from tests.unit.infra.translate import (
    of_type,
    samconfig_environments,
    source_template,
    translate,
    versions,
    write,
)

ENVIRONMENTS = samconfig_environments()
MODEL_LAYER = "ModelLayer"
# A value each setting could take instead of the environment's; None: the template allows one value.
OTHER_VALUE: dict[str, str | None] = {
    "LogLevel": "ERROR",
    "MaxRows": "17",
    "MaxBodyBytes": "4096",
    "RedactFields": "sex,island",
    "OrtIntraOpThreads": "auto",
    "SdkTracing": "Enabled",
    "SnapStart": "PublishedVersions",
    "CaptureSampleRate": "0.5",
    "CaptureRedactFields": "island",
    "MonitorWindowMinutes": None,
    "MinDriftSamples": "250",
    "MinFeedback": "75",
    "BatchInputPrefix": "inbox/",
    "BatchOutputPrefix": "outbox/",
    "ShadowSampleRate": "0.5",
    "ShadowBudgetMs": "2",
    "BatchDistributedMinBytes": "2147483648",
    "BatchWorkPrefix": "parts/",
    "BatchRangeBytes": "33554432",
    "BatchMaxConcurrency": "50",
    "BatchToleratedFailurePercentage": "5",
}
# Settings that change what a published version does, whatever else the template says.
MUST_PIN = {
    "LogLevel",
    "RedactFields",
    "MaxRows",
    "SnapStart",
    "CaptureRedactFields",
    "OrtIntraOpThreads",
    "ShadowSampleRate",  # turning the shadow on or off must reach `live` (SAM #3820 otherwise)
}
# Deploy-time settings that must not publish a version: CodeDeploy, concurrency, alarms, logs.
NOT_PINNED = {"DeploymentType", "ReservedConcurrency", "ProvisionedConcurrency", "LatencyP99ThresholdMs"}


def artifacts(**changed: str) -> dict[str, str]:
    """Stand-ins for the digests of the built code and layers (`make build` hashes .aws-sam/build)."""
    names = ["ApiFunction", "BatchFunction", "BatchRangeFunction", "MonitorFunction", "PreTrafficHook"]
    names += ["CoreLayer", MODEL_LAYER, "ChallengerLayer"]
    return {name: hashlib.sha256(changed.get(name, name).encode()).hexdigest() for name in names}


def model_stamp(model: str, stage: str) -> stamp.Stamp:
    manifest = json.loads((MODELS / model / "manifest.json").read_text())
    return stamp.Stamp(manifest["version"], manifest["sha256"], "a" * 40, stage)


def env_values(env: str) -> dict[str, str]:
    return stamp.environment_values(source_template(), env, ROOT / "samconfig.toml")


@functools.cache
def variants() -> dict[str, dict[str, Any]]:
    """Every stamped variant the tests look at, translated in one SAM process."""
    source = source_template()
    pinned_names = sorted({p for used in stamp.version_parameters(source).values() for p in used})
    todo: dict[str, tuple[dict[str, Any], list[str]]] = {}

    def add(
        name: str,
        values: dict[str, str],
        *args: str,
        built: dict[str, str] | None = None,
        model: str = "penguins",
        template: dict[str, Any] | None = None,
    ) -> None:
        s = model_stamp(model, values["Stage"])
        todo[name] = (stamp.stamp_template(template or source, s, values, built or artifacts()), list(args))

    for env in ENVIRONMENTS:
        add(env, env_values(env))
        # a deploy-time setting is passed at deploy, never pinned
        add(f"{env}:DeploymentType", env_values(env), "DeploymentType=Linear10PercentEvery1Minute")
    base = env_values("prod")
    for name in pinned_names:
        if OTHER_VALUE.get(name) is not None:
            add(f"setting:{name}", {**base, name: str(OTHER_VALUE[name])})
    # a model-only release: new model layer content, the new model's stamp
    diabetes = artifacts(ModelLayer="diabetes")
    add("model", base, f"{MODEL_LAYER}.Uri=s3://artifacts/diabetes", built=diabetes, model="diabetes")
    add("model-layer-only", base, f"{MODEL_LAYER}.Uri=s3://artifacts/x", built=artifacts(ModelLayer="x"))
    add("core", base, "CoreLayer.Uri=s3://artifacts/core2", built=artifacts(CoreLayer="core2"))
    add("api-code", base, "ApiFunction.Uri=s3://artifacts/api2", built=artifacts(ApiFunction="api2"))
    # a new shadow challenger: a release like any other, canaried and golden-gated
    add("challenger", base, "ChallengerLayer.Uri=s3://artifacts/c2", built=artifacts(ChallengerLayer="c2"))
    add("batch-code", base, "BatchFunction.Uri=s3://artifacts/b2", built=artifacts(BatchFunction="b2"))
    # a change that replaces a resource a function names (its name or ARN is in the function's settings)
    replaced = copy.deepcopy(source)
    replaced["Resources"]["CaptureBucket"]["Properties"]["BucketName"] = "another-capture-bucket"
    add("capture-bucket-replaced", base, template=replaced)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: write(t, Path(tmp), re.sub(r"\W", "_", name)) for name, (t, _) in todo.items()}
        results = translate([[paths[name], *args] for name, (_, args) in todo.items()])
    return dict(zip(todo, results, strict=True))


def stamped(env: str) -> dict[str, Any]:
    values = env_values(env)
    return stamp.stamp_template(
        source_template(), model_stamp("penguins", values["Stage"]), values, artifacts()
    )


def functions_loading(resources: dict[str, Any], layer_prefix: str) -> set[str]:
    return {
        name
        for name, r in of_type(resources, "AWS::Lambda::Function").items()
        if any(str(ref.get("Ref", "")).startswith(layer_prefix) for ref in r["Properties"].get("Layers", []))
    }


# -- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_publishes_the_stamped_digest_of_every_aliased_function(env: str) -> None:
    # GIVEN the template stamped for a samconfig environment WHEN SAM translates it
    resources = variants()[env]
    template = stamped(env)
    digests = stamp.version_digests(template)
    # THEN every aliased function's version is named by its digest (SAM takes AutoPublishCodeSha256
    # instead of hashing properties), and its description carries the release stamp
    assert set(digests) == {"ApiFunction", "BatchFunction", "BatchRangeFunction", "MonitorFunction"}
    for function, version in versions(resources).items():
        assert version == f"{function}Version{digests[function][:10]}"
        description = resources[version]["Properties"]["Description"]
        assert f"digest {digests[function][:10]}" in description
        assert description.startswith("model 1.0.0 sha256 ")
    # AND the stamp reaches the environment of the API function and the hook's expectation
    sha = json.loads((MODELS / "penguins" / "manifest.json").read_text())["sha256"]
    assert template["Mappings"]["Release"]["Build"]["ModelSha256"] == sha
    api_env = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_env["ONNXLAMBDA_RELEASE_MODEL_SHA256"] == {
        "Fn::FindInMap": ["Release", "Build", "ModelSha256"]
    }
    hook_env = resources["PreTrafficHook"]["Properties"]["Environment"]["Variables"]
    assert hook_env["ONNXLAMBDA_EXPECTED_MODEL_SHA256"] == {
        "Fn::FindInMap": ["Release", "Build", "ModelSha256"]
    }


def test_the_settings_that_reach_a_version_are_found_in_the_template() -> None:
    # GIVEN the parameters whose value reaches a published version (read from the template)
    found = {p for used in stamp.version_parameters(source_template()).values() for p in used}
    # THEN the known behaviour-changing ones are among them, deploy-time ones are not, and each
    # has a row in this test's table (a new setting must be tested here before it ships)
    assert found >= MUST_PIN
    assert not found & NOT_PINNED
    assert found == set(OTHER_VALUE)


@pytest.mark.parametrize("setting", sorted(OTHER_VALUE))
def test_changing_a_setting_publishes_a_new_version_of_each_function_it_reaches(setting: str) -> None:
    uses = {f for f, used in stamp.version_parameters(source_template()).items() if setting in used}
    if OTHER_VALUE[setting] is None:
        # GIVEN a setting the template allows one value for THEN it is pinned to that value
        [allowed] = source_template()["Parameters"][setting]["AllowedValues"]
        assert stamp.pinned(stamped("prod"))[setting] == str(allowed)
        return
    # GIVEN prod's settings with this one changed (a samconfig edit or a one-off override)
    before, after = versions(variants()["prod"]), versions(variants()[f"setting:{setting}"])
    # THEN exactly the functions whose version the setting reaches publish a new version
    assert uses
    assert {f for f in before if before[f] != after[f]} == uses


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_time_settings_do_not_publish(env: str) -> None:
    # WHEN only the CodeDeploy traffic shifting changes THEN no function publishes a version
    assert versions(variants()[env]) == versions(variants()[f"{env}:DeploymentType"])


def test_a_model_only_release_moves_every_function_that_loads_the_model_together() -> None:
    before, after = variants()["prod"], variants()["model"]
    # GIVEN the functions that load the model layer (the hook too: it reads the golden set)
    loading = functions_loading(before, MODEL_LAYER)
    assert {"ApiFunction", "BatchFunction", "MonitorFunction", "PreTrafficHook"} <= loading
    # WHEN the model changes and nothing else
    old, new = versions(before), versions(after)
    # THEN every one of them with an alias publishes a new version: batch scoring and the monitor
    # move to the new model with the API (the hook has no alias: it runs $LATEST, updated in place)
    assert set(old) == loading - {"PreTrafficHook"}
    assert all(old[f] != new[f] for f in old)
    # AND even a new model layer that kept its manifest's stamp would (the digest covers layer content)
    layer_only = versions(variants()["model-layer-only"])
    assert all(old[f] != layer_only[f] for f in old)


@pytest.mark.parametrize(
    ("variant", "moved"),
    [
        ("core", {"ApiFunction", "BatchFunction", "BatchRangeFunction", "MonitorFunction"}),
        ("api-code", {"ApiFunction"}),
        # every function carries the Globals' layers, so a new challenger republishes all three
        ("challenger", {"ApiFunction", "BatchFunction", "BatchRangeFunction", "MonitorFunction"}),
        ("batch-code", {"BatchFunction"}),
        ("capture-bucket-replaced", {"MonitorFunction"}),
    ],
)
def test_code_layer_and_named_resource_changes_publish_where_they_reach(
    variant: str, moved: set[str]
) -> None:
    before, after = versions(variants()["prod"]), versions(variants()[variant])
    assert {f for f in before if before[f] != after[f]} == moved


# -- pinning and refusing unstamped templates -------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_stamped_build_only_accepts_the_settings_its_digests_cover(env: str) -> None:
    template = stamped(env)
    values = env_values(env)
    # THEN each setting that reaches a version allows exactly the environment's value, so a
    # one-off override, a value `sam deploy` resends from the last deploy (UsePreviousValue) or a
    # build for another environment is refused by CloudFormation, never deployed under a stale digest
    pinned = stamp.pinned(template)
    assert set(pinned) == set(OTHER_VALUE)
    for name in pinned:
        assert template["Parameters"][name]["AllowedValues"] == [values[name]]
        assert template["Parameters"][name]["Default"] == values[name]
    # AND deploy-time settings stay free
    assert not set(pinned) & NOT_PINNED
    # AND the build accepts only the Stage it was stamped for
    [assertion] = template["Rules"]["StampedBuild"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "Stage"}, values["Stage"]]}


def test_the_unstamped_template_is_refused_by_cloudformation() -> None:
    # GIVEN template.yaml as `sam build` (or `sam sync`) would deploy it, without the stamp
    template = source_template()
    [assertion] = template["Rules"]["StampedBuild"]["Assertions"]
    # THEN its rule demands a Stage no deployment can have: CloudFormation refuses the change set
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "Stage"}, stamp.UNSTAMPED]}
    assert stamp.UNSTAMPED not in template["Parameters"]["Stage"]["AllowedValues"]
    # AND the stamp is not a parameter (sam deploy would resend a stale one: UsePreviousValue)
    assert not {"ModelVersion", "ModelSha256", "CodeRevision"} & set(template["Parameters"])
    # AND a stamped template cannot be stamped again (its pinned values would pass for defaults)
    with pytest.raises(stamp.StampError, match="unstamped"):
        stamp.stamp_template(stamped("dev"), model_stamp("penguins", "prod"), env_values("prod"), artifacts())


def test_a_setting_outside_the_template_constraints_is_refused_at_build() -> None:
    template = source_template()
    good = env_values("prod")
    s = model_stamp("penguins", "prod")
    for name, bad in (("MaxBodyBytes", "7000000"), ("LogLevel", "TRACE"), ("RedactFields", "a b")):
        with pytest.raises(stamp.StampError, match=name):
            stamp._check(name, bad, template["Parameters"][name])
    assert stamp.stamp_template(template, replace(s), good, artifacts())


# -- alarms -----------------------------------------------------------------------------------


def _key_allows_cloudwatch(resources: dict[str, Any], key: Any) -> bool:
    if not (isinstance(key, dict) and "Ref" in key and key["Ref"] in resources):
        return False  # an alias (alias/aws/sns) or an outside key: its policy cannot be checked here
    for s in resources[key["Ref"]]["Properties"]["KeyPolicy"]["Statement"]:
        services = s.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        actions = set([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if s["Effect"] == "Allow" and "cloudwatch.amazonaws.com" in services:
            return {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions
    return False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_alarm_notification_can_be_delivered(env: str) -> None:
    resources = variants()[env]
    alarms = {
        **of_type(resources, "AWS::CloudWatch::Alarm"),
        **of_type(resources, "AWS::CloudWatch::CompositeAlarm"),
    }
    notified: set[str] = set()
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        for action in props.get("AlarmActions", []) + props.get("OKActions", []):
            # THEN each action is one of this stack's topics...
            topic = resources[action["Ref"]]
            assert topic["Type"] == "AWS::SNS::Topic", (name, action)
            # ...encrypted with a key whose policy lets CloudWatch publish (never alias/aws/sns)
            key = topic["Properties"].get("KmsMasterKeyId")
            assert key is None or _key_allows_cloudwatch(resources, key), (name, action["Ref"], key)
            notified.add(name)
    # AND every alarm without actions of its own is either in a composite alarm that notifies,
    # or rolls a CodeDeploy deployment back
    composite_rules = " ".join(
        json.dumps(a["Properties"].get("AlarmRule", "")) for n, a in alarms.items() if n in notified
    )
    rollbacks = {
        a["Name"]["Ref"]
        for group in of_type(resources, "AWS::CodeDeploy::DeploymentGroup").values()
        for a in group["Properties"]["AlarmConfiguration"]["Alarms"]
    }
    for name in set(alarms) - notified:
        assert name in rollbacks or "${" + name + "}" in composite_rules, name


# -- re-creating a stack ----------------------------------------------------------------------

# Properties that give a resource a physical name that must be unique (account and region).
NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
}
SURVIVES_A_FAILED_CREATE = {"Retain", "Snapshot"}
SURVIVES_A_DELETE = {"Retain", "Snapshot", "RetainExceptOnCreate"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_resource_left_behind_blocks_creating_the_stack_again(env: str) -> None:
    resources = variants()[env]
    for name, resource in resources.items():
        policy = resource.get("DeletionPolicy", "Delete")
        named = resource["Properties"].get(NAME_PROPERTY.get(resource["Type"], ""), None)
        # THEN nothing named survives a rolled-back first create (a retry would fail "already exists")
        assert not (named and policy in SURVIVES_A_FAILED_CREATE), (name, policy, named)
        # AND what a stack delete keeps is named after this stack's id, so creating it again never collides
        if named and policy in SURVIVES_A_DELETE:
            assert "AWS::StackId" in json.dumps(named), (name, named)
    # AND data buckets are kept on delete (a non-empty bucket cannot be deleted) yet removed when
    # the create that made them rolls back
    for name, bucket in of_type(resources, "AWS::S3::Bucket").items():
        assert bucket.get("DeletionPolicy") == "RetainExceptOnCreate", name
        assert bucket.get("UpdateReplacePolicy") == "Retain", name


def test_the_capture_subscription_role_exists_before_the_stream_is_created() -> None:
    resources = variants()["prod"]
    role, stream = resources["CaptureSubscriptionRole"], resources["CaptureDeliveryStream"]
    # THEN the role the subscription's test record is sent with is created first, and does not
    # wait for the stream (it names it), so it has the stream's creation time to propagate
    assert "CaptureSubscriptionRole" in stream.get("DependsOn", [])
    assert "CaptureDeliveryStream" not in json.dumps(role)
    [statement] = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    name = stream["Properties"]["DeliveryStreamName"]["Fn::Sub"]
    assert statement["Resource"]["Fn::Sub"].endswith(f":deliverystream/{name}")
    # AND the subscription itself comes after both
    [subscription] = of_type(resources, "AWS::Logs::SubscriptionFilter").values()
    refs = json.dumps(subscription["Properties"])
    assert "CaptureSubscriptionRole" in refs
    assert "CaptureDeliveryStream" in refs


# -- one account, several stacks --------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stacks_in_one_account_share_no_layer_and_no_metric(env: str) -> None:
    resources = variants()[env]
    # THEN each layer is named after the stack (SAM would name it after its logical id)
    for name, layer in of_type(resources, "AWS::Lambda::LayerVersion").items():
        assert "${AWS::StackName}" in json.dumps(layer["Properties"]["LayerName"]), name
    # AND every function reports its metrics under this stack's service name
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}, name


# -- samconfig --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_environment_reserves_concurrency_by_default(env: str) -> None:
    # GIVEN Lambda keeps 100 executions unreserved: reserving N needs a quota of N + 100, and new
    # accounts have less (API_PutFunctionConcurrency) THEN nothing reserves unless asked to
    assert source_template()["Parameters"]["ReservedConcurrency"]["Default"] == -1
    assert env_values(env)["ReservedConcurrency"] == "-1"


def test_prod_deploys_unattended() -> None:
    # `make deploy ENV=prod` runs in CI: a y/N change-set prompt would abort it
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for table in config.values():
        if isinstance(table, dict) and "deploy" in table:
            assert table["deploy"]["parameters"]["confirm_changeset"] is False


def test_release_outputs_name_the_deployment_group() -> None:
    # The release CLI scopes CodeDeploy look-ups to this stack's application and deployment group
    outputs = copy.deepcopy(source_template()["Outputs"])
    assert outputs["DeploymentApplication"]["Value"] == {"Ref": "ServerlessDeploymentApplication"}
    assert outputs["ApiDeploymentGroup"]["Value"] == {"Ref": "ApiFunctionDeploymentGroup"}
    assert outputs["ApiFunctionVersion"]["Value"] == {"Ref": "ApiFunction.Version"}
    assert set(variants()["prod"]) >= {"ServerlessDeploymentApplication", "ApiFunctionDeploymentGroup"}
