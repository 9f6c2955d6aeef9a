"""The release CLI against moto (Lambda, CloudFormation, CodeDeploy): status, rollback, preflight, refusals.

CodeDeploy's deployment target API (ListDeploymentTargets, BatchGetDeploymentTargets) is not in
moto 5, so the history tests answer those calls with botocore's Stubber, in the shapes of the
CodeDeploy API reference; everything else is moto.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.codedeploy.models import codedeploy_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from onnxlambda_cli.release import ReleaseError, command, deployments, environments, rollback, versions
from onnxlambda_cli.release import preflight as preflighting

STACK = "onnxlambda-test"
FUNCTION = "onnxlambda-test-api"
APPLICATION, GROUP = (
    "onnxlambda-test-ServerlessDeploymentApplication-1",
    "onnxlambda-test-ApiFunctionDeploymentGroup-1",
)
SHA = {"1.0.0": "a" * 64, "1.1.0": "b" * 64, "1.2.0": "c" * 64}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _stamp(model_version: str, revision: str) -> dict[str, Any]:
    return {
        "Variables": {
            "ONNXLAMBDA_RELEASE_MODEL_VERSION": model_version,
            "ONNXLAMBDA_RELEASE_MODEL_SHA256": SHA[model_version],
            "ONNXLAMBDA_RELEASE_CODE_REVISION": revision,
        }
    }


@pytest.fixture
def lambda_client() -> Iterator[Any]:
    with mock_aws():
        role = boto3.client("iam", region_name="us-east-1").create_role(
            RoleName="api", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        client = boto3.client("lambda", region_name="us-east-1")
        client.create_function(
            FunctionName=FUNCTION,
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": _zip()},
            Environment=_stamp("1.0.0", "1111111"),
        )
        yield client


def publish(client: Any, model_version: str, revision: str) -> str:
    """What a deployment does: update $LATEST with the release stamp, publish a version."""
    client.update_function_configuration(FunctionName=FUNCTION, Environment=_stamp(model_version, revision))
    description = (
        f"model {model_version} sha256 {SHA[model_version]} code {revision} digest {digest(revision)}"
    )
    return str(client.publish_version(FunctionName=FUNCTION, Description=description)["Version"])


def digest(revision: str) -> str:
    """The version digest `make build` would stamp for a release (10 characters are enough here)."""
    return (revision * 10)[:10]


def roll_back(
    client: Any,
    *,
    to: str = "previous",
    history: deployments.History | None = None,
    active: list[str] | None = None,
) -> rollback.Rollback:
    """What `onnxlambda release rollback` does to FUNCTION: plan the move (refusing as it must), make it."""
    plan = rollback.plan_rollback(client, FUNCTION, "live", to, history=history, active=active or ())
    return rollback.rollback(client, plan)


def live(client: Any) -> str:
    return str(client.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"])


@pytest.fixture
def three_releases(lambda_client: Any) -> Any:
    # GIVEN versions 1, 2 and 3 (models 1.0.0, 1.1.0, 1.2.0) and `live` on version 3
    for model_version, revision in (("1.0.0", "1111111"), ("1.1.0", "2222222"), ("1.2.0", "3333333")):
        publish(lambda_client, model_version, revision)
    lambda_client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="3")
    return lambda_client


def test_status_shows_version_model_and_code_of_each_alias(three_releases: Any) -> None:
    # GIVEN a second alias on version 1
    three_releases.create_alias(FunctionName=FUNCTION, Name="previous-release", FunctionVersion="1")
    # WHEN status is asked for every alias
    rows = versions.status(three_releases, FUNCTION)
    # THEN each alias names its version and the model and code that version was published with
    by_alias = {row.alias: row.version for row in rows}
    assert set(by_alias) == {"live", "previous-release"}
    assert (by_alias["live"].version, by_alias["live"].model_version) == ("3", "1.2.0")
    assert by_alias["live"].model_sha256 == SHA["1.2.0"]
    assert by_alias["live"].code_revision == "3333333"
    assert (by_alias["previous-release"].version, by_alias["previous-release"].model_version) == (
        "1",
        "1.0.0",
    )
    assert by_alias["live"].description == f"model 1.2.0 sha256 {SHA['1.2.0']} code 3333333 digest 3333333333"
    assert by_alias["live"].digest == "3333333333"


def test_status_command_prints_alias_version_and_model(
    three_releases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the CLI's status command runs
    code = command.main(["status", "--function", FUNCTION], client=three_releases)
    out = capsys.readouterr().out
    # THEN it exits 0 and prints alias -> version with model version, sha256 and code revision
    assert code == 0
    assert f"live -> version 3: model 1.2.0 sha256 {SHA['1.2.0']} code 3333333" in out


def test_status_shows_a_canary_in_progress(three_releases: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN CodeDeploy shifting 10% of `live` to version 3 while version 2 takes the rest
    three_releases.update_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}},
    )
    # WHEN status runs as JSON
    assert command.main(["status", "--function", FUNCTION, "--json"], client=three_releases) == 0
    [row] = json.loads(capsys.readouterr().out)
    # THEN it shows both the version serving most traffic and the canary's share
    assert row["version"]["version"] == "2"
    assert row["routing"] == {"3": 0.1}


def test_rollback_to_previous_points_live_at_the_version_before(three_releases: Any) -> None:
    # WHEN rolled back with the default target
    done = roll_back(three_releases)
    # THEN live serves version 2 (model 1.1.0) and the alias records where it came from
    assert (done.from_version, done.to_version) == ("3", "2")
    assert live(three_releases) == "2"
    alias = three_releases.get_alias(FunctionName=FUNCTION, Name="live")
    assert "rolled back from version 3" in alias["Description"]
    assert versions.status(three_releases, FUNCTION, "live")[0].version.model_version == "1.1.0"


def test_rollback_twice_keeps_going_back(three_releases: Any) -> None:
    # WHEN rolled back twice THEN live ends on version 1
    roll_back(three_releases)
    roll_back(three_releases)
    assert live(three_releases) == "1"


def make_stack(recorded: str = "3") -> tuple[Any, Any]:
    """The deployed stack: its outputs (template.yaml Outputs) and its CodeDeploy application and group."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    arn = f"arn:aws:lambda:us-east-1:{DEFAULT_ACCOUNT_ID}:function:{FUNCTION}"
    outputs = {
        "ApiFunctionName": FUNCTION,
        "ApiFunctionVersion": f"{arn}:{recorded}",
        "DeploymentApplication": APPLICATION,
        "ApiDeploymentGroup": GROUP,
    }
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {
                "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()},
            }
        ),
    )
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    for application, group in ((APPLICATION, GROUP), ("another-stack-app", "another-group")):
        codedeploy.create_application(applicationName=application, computePlatform="Lambda")
        codedeploy.create_deployment_group(
            applicationName=application,
            deploymentGroupName=group,
            serviceRoleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/codedeploy",
        )
    return cloudformation, codedeploy


def start_deployment(codedeploy: Any, status: str, application: str = APPLICATION, group: str = GROUP) -> str:
    deployment = str(
        codedeploy.create_deployment(
            applicationName=application,
            deploymentGroupName=group,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}},
        )["deploymentId"]
    )
    # moto leaves deployments "Created"; set the state CodeDeploy would be in.
    codedeploy_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].deployments[deployment].status = status
    return deployment


def test_rollback_to_a_named_version(three_releases: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cloudformation, codedeploy = make_stack()
    # WHEN the CLI rolls back the stack's function to version 1 explicitly
    code = command.main(
        ["rollback", "--stack", STACK, "--to", "1"],
        client=three_releases,
        codedeploy=codedeploy,
        cloudformation=cloudformation,
    )
    # THEN live serves version 1 and the output says so, with the model now served
    assert code == 0
    assert live(three_releases) == "1"
    out = capsys.readouterr().out
    assert f"{FUNCTION}:live now serves version 1 (was 3); version 3 is withdrawn" in out
    assert "model 1.0.0" in out


def test_a_rollback_marks_the_version_it_leaves_as_withdrawn(three_releases: Any) -> None:
    # WHEN live is rolled back twice
    roll_back(three_releases)
    roll_back(three_releases)
    # THEN both versions it left are recorded on the function, where the deploy preflight reads them
    assert rollback.withdrawn_versions(three_releases, FUNCTION) == ["3", "2"]


def test_rollback_refuses_when_there_is_no_previous_version(
    lambda_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a single published version behind `live`
    publish(lambda_client, "1.0.0", "1111111")
    lambda_client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
    cloudformation, codedeploy = make_stack(recorded="1")
    # WHEN asked to roll back
    code = command.main(
        ["rollback", "--stack", STACK],
        client=lambda_client,
        codedeploy=codedeploy,
        cloudformation=cloudformation,
    )
    # THEN it refuses with exit code 2 and a clear reason, and live is untouched
    assert code == 2
    err = capsys.readouterr().err
    assert "refused: no previous version: alias 'live' serves version 1" in err
    assert "(published: 1)" in err
    assert live(lambda_client) == "1"


@pytest.mark.parametrize(
    ("target", "reason"),
    [("7", "is not a published version"), ("3", "already serves version 3"), ("$LATEST", "not a published")],
)
def test_rollback_refuses_unknown_or_current_targets(three_releases: Any, target: str, reason: str) -> None:
    # WHEN asked to move live to a version that does not exist, to the one it serves, or to $LATEST
    with pytest.raises(ReleaseError, match=reason.replace("$", r"\$")):
        roll_back(three_releases, to=target)
    # THEN live stays where it was
    assert live(three_releases) == "3"


def test_rollback_refuses_during_a_traffic_split(three_releases: Any) -> None:
    # GIVEN a canary in progress (the alias splits traffic)
    three_releases.update_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}},
    )
    # WHEN a manual rollback is asked THEN it refuses and points at CodeDeploy's own rollback
    with pytest.raises(ReleaseError, match=r"mid-deployment.*stop-deployment"):
        roll_back(three_releases)
    assert live(three_releases) == "2"


@pytest.mark.parametrize("state", deployments.ACTIVE_STATUSES)
def test_rollback_refuses_while_a_deployment_of_the_stack_may_still_shift_traffic(
    three_releases: Any, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployment of the stack's group in this state; the alias has no traffic split (as
    # during the pre-traffic hook, when the deployment is InProgress)
    cloudformation, codedeploy = make_stack()
    deployment = start_deployment(codedeploy, state)
    # WHEN a manual rollback is asked
    code = command.main(
        ["rollback", "--stack", STACK],
        client=three_releases,
        codedeploy=codedeploy,
        cloudformation=cloudformation,
    )
    # THEN it refuses, naming the deployment: CodeDeploy would overwrite the manual move
    assert code == 2
    assert f"CodeDeploy deployment {deployment} of this stack is not finished" in capsys.readouterr().err
    assert live(three_releases) == "3"


def test_deployments_of_other_stacks_do_not_block_a_rollback(three_releases: Any) -> None:
    # GIVEN another stack's deployment in progress and this stack's last one finished
    cloudformation, codedeploy = make_stack()
    start_deployment(codedeploy, "InProgress", "another-stack-app", "another-group")
    start_deployment(codedeploy, "Succeeded")
    where = deployments.stack(cloudformation, STACK)
    assert where is not None
    # THEN only this stack's group is looked at: nothing is active, and the rollback goes through
    assert deployments.active_deployments(codedeploy, where) == []
    assert roll_back(three_releases, active=[]).to_version == "2"


# -- history from CodeDeploy's deployment target API ------------------------------------------


def deployment(
    deployment_id: str, status: str, current: str, target: str, creator: str = "CloudFormation", **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DeploymentInfo and the DeploymentTarget of its Lambda function (CodeDeploy API shapes)."""
    function = extra.pop("function", FUNCTION)
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=int(deployment_id.removeprefix("d-")))
    info = {"deploymentId": deployment_id, "status": status, "creator": creator, "createTime": created}
    info.update(extra)
    target_info = {
        "deploymentTargetType": "LambdaTarget",
        "lambdaTarget": {
            "deploymentId": deployment_id,
            "targetId": f"{FUNCTION}:live",
            "status": status,
            "lambdaFunctionInfo": {
                "functionName": function,
                "functionAlias": "live",
                "currentVersion": current,
                "targetVersion": target,
                "targetVersionWeight": 1.0,
            },
        },
    }
    return info, target_info


def stubbed_history(finished: list[tuple[dict[str, Any], dict[str, Any]]]) -> deployments.History | None:
    """deployment_history() with CodeDeploy answering from `finished`, scoped calls checked."""
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    where = deployments.Stack(STACK, FUNCTION, "3", APPLICATION, GROUP)
    with Stubber(codedeploy) as stub:
        stub.add_response(
            "list_deployments",
            {"deployments": [d["deploymentId"] for d, _ in finished]},
            {
                "applicationName": APPLICATION,
                "deploymentGroupName": GROUP,
                "includeOnlyStatuses": list(deployments.FINISHED_STATUSES),
            },
        )
        stub.add_response(
            "batch_get_deployments",
            {"deploymentsInfo": [d for d, _ in finished]},
            {"deploymentIds": [d["deploymentId"] for d, _ in finished]},
        )
        for info, target in sorted(finished, key=lambda d: d[0]["createTime"]):
            undoes = (info.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId")
            if info.get("creator") in deployments.ROLLBACK_CREATORS or undoes:
                continue  # never asked for: not a release
            target_id = target["lambdaTarget"]["targetId"]
            stub.add_response(
                "list_deployment_targets", {"targetIds": [target_id]}, {"deploymentId": info["deploymentId"]}
            )
            stub.add_response(
                "batch_get_deployment_targets",
                {"deploymentTargets": [target]},
                {"deploymentId": info["deploymentId"], "targetIds": [target_id]},
            )
        history = deployments.deployment_history(codedeploy, where)
        stub.assert_no_pending_responses()
    return history


def test_previous_is_the_version_the_current_one_replaced(three_releases: Any) -> None:
    # GIVEN 2 went live from 1, 3 failed its golden-set gate (CodeDeploy's own rollback moved
    # traffic back to 2), then 4 went live from 2; another function's deployment in the group too
    publish(three_releases, "1.2.0", "4444444")
    three_releases.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="4")
    history = stubbed_history(
        [
            deployment("d-1", "Succeeded", "1", "2"),
            deployment("d-2", "Failed", "2", "3", rollbackInfo={"rollbackDeploymentId": "d-3"}),
            deployment(
                "d-3",
                "Succeeded",
                "3",
                "2",
                creator="codeDeployRollback",
                rollbackInfo={"rollbackTriggeringDeploymentId": "d-2"},
            ),
            deployment("d-4", "Succeeded", "2", "4"),
            deployment("d-5", "Succeeded", "3", "1", function="another-function"),
        ]
    )
    assert history is not None
    # THEN CodeDeploy's rollback deployment is not a release: 3 never served, and nothing "replaced" 2 with 3
    assert (history.served, history.refused) == (frozenset({"1", "2", "4"}), frozenset({"3"}))
    assert history.replaced == {"2": "1", "4": "2"}
    # WHEN rolled back to "previous" THEN live goes back to 2, passing over 3
    done = roll_back(three_releases, history=history)
    assert (done.to_version, done.skipped) == ("2", ("3",))
    assert live(three_releases) == "2"


def test_after_a_manual_rollback_previous_skips_refused_versions(three_releases: Any) -> None:
    # GIVEN 1 -> 2 succeeded, 2 -> 3 failed, and live serves 4 without a deployment record
    publish(three_releases, "1.2.0", "4444444")
    three_releases.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="4")
    history = stubbed_history(
        [deployment("d-1", "Succeeded", "1", "2"), deployment("d-2", "Failed", "2", "3")]
    )
    # WHEN live (on 4, which no deployment made live) is rolled back THEN 3 is passed over
    done = roll_back(three_releases, history=history)
    assert (done.to_version, done.skipped) == ("2", ("3",))


def test_previous_refuses_when_every_older_version_was_refused(three_releases: Any) -> None:
    # GIVEN versions 1 and 2 both failed their deployments and live serves 3
    history = stubbed_history([deployment("d-1", "Failed", "3", "1"), deployment("d-2", "Stopped", "3", "2")])
    # WHEN asked for the previous version THEN it refuses, naming the refused versions
    with pytest.raises(ReleaseError, match=r"CodeDeploy refused versions 1, 2"):
        roll_back(three_releases, history=history)
    assert live(three_releases) == "3"


def test_without_codedeploy_history_previous_is_the_newest_older_version_and_says_so(
    three_releases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation, codedeploy = make_stack()
    code = command.main(
        ["rollback", "--stack", STACK],
        client=three_releases,
        codedeploy=codedeploy,
        cloudformation=cloudformation,
    )
    # moto has no deployment target API: the CLI notes the missing history and falls back
    assert code == 0
    assert live(three_releases) == "2"
    assert "no CodeDeploy history" in capsys.readouterr().err


# -- the deploy preflight ---------------------------------------------------------------------


def build(model_version: str, revision: str) -> dict[str, Any]:
    """The parts of a stamped build's template the preflight reads."""
    return {
        "Mappings": {
            "Release": {
                "Build": {
                    "ModelVersion": model_version,
                    "ModelSha256": SHA[model_version],
                    "CodeRevision": revision,
                }
            }
        },
        "Resources": {
            "ApiFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "AutoPublishAlias": "live",
                    "AutoPublishCodeSha256": digest(revision) + "f" * 54,
                },
            }
        },
    }


def preflight(client: Any, built: dict[str, Any]) -> preflighting.Preflight:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    return preflighting.preflight(client, codedeploy, cloudformation, STACK, built)


def test_preflight_lets_a_first_deploy_create_the_stack(lambda_client: Any) -> None:
    assert preflight(lambda_client, build("1.2.0", "4444444")) == preflighting.Preflight(
        False, (f"stack {STACK} does not exist yet: this deploy creates it",)
    )


def test_preflight_lets_a_new_release_go_out(three_releases: Any) -> None:
    # GIVEN live on the version CloudFormation recorded THEN a new build deploys as configured
    make_stack(recorded="3")
    assert preflight(three_releases, build("1.2.0", "4444444")).resync is False


def test_preflight_refuses_while_a_deployment_runs(three_releases: Any) -> None:
    _, codedeploy = make_stack()
    start_deployment(codedeploy, "InProgress")
    with pytest.raises(ReleaseError, match="not finished"):
        preflight(three_releases, build("1.2.0", "4444444"))


def test_preflight_refuses_the_release_a_manual_rollback_withdrew(three_releases: Any) -> None:
    # GIVEN live rolled back from 3, then put back on CloudFormation's record by a redeploy of 2
    make_stack(recorded="3")
    roll_back(three_releases)
    three_releases.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="3")
    # WHEN the build being deployed is version 3's release (same digest) THEN it is refused
    with pytest.raises(ReleaseError, match=r"this build is version 3 .*withdrew"):
        preflight(three_releases, build("1.2.0", "3333333"))


def test_after_a_manual_rollback_only_the_release_live_serves_may_be_deployed(three_releases: Any) -> None:
    # GIVEN CloudFormation records version 3, and live was rolled back by hand to 2
    make_stack(recorded="3")
    roll_back(three_releases)
    # WHEN any other release is deployed THEN it is refused: CodeDeploy would start its traffic
    # shift from the version CloudFormation records, the withdrawn one
    with pytest.raises(ReleaseError, match=r"rolled back by hand.*code 2222222, model 1.1.0"):
        preflight(three_releases, build("1.2.0", "4444444"))
    # WHEN the release live serves is deployed THEN it goes out AllAtOnce, re-recording live
    checked = preflight(three_releases, build("1.1.0", "2222222"))
    assert checked.resync is True
    overrides = dict(p.split("=", 1) for p in preflighting.deploy_overrides("prod", checked.resync).split())
    assert overrides["DeploymentType"] == "AllAtOnce"
    assert overrides["Stage"] == "prod"


def test_the_preflight_command_prints_the_environment_overrides(
    three_releases: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation, codedeploy = make_stack()
    template = tmp_path / "template.yaml"
    template.write_text(json.dumps(build("1.2.0", "4444444")))
    config_env_stack = environments.stack_name("dev")
    cloudformation.create_stack(
        StackName=config_env_stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {
                    "ApiFunctionName": {"Value": FUNCTION},
                    "ApiFunctionVersion": {"Value": "3"},
                    "DeploymentApplication": {"Value": APPLICATION},
                    "ApiDeploymentGroup": {"Value": GROUP},
                },
            }
        ),
    )
    args = ["preflight", "--config-env", "dev", "--template", str(template)]
    assert (
        command.main(args, client=three_releases, codedeploy=codedeploy, cloudformation=cloudformation) == 0
    )
    assert capsys.readouterr().out.strip() == preflighting.deploy_overrides("dev", resync=False)
    assert "DeploymentType=AllAtOnce" in preflighting.deploy_overrides("dev", resync=False)


def test_a_stack_from_an_older_template_says_what_is_missing() -> None:
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}, "Outputs": {}}),
        )
        with pytest.raises(ReleaseError, match="no output ApiFunctionName, ApiFunctionVersion"):
            deployments.stack(cloudformation, STACK)
