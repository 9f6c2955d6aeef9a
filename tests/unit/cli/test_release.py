"""The release CLI against moto's Lambda: what each alias serves, rollback, and its refusals."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.codedeploy.models import codedeploy_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from onnxlambda_cli import release

FUNCTION = "onnxlambda-test-api"
SHA = {"1.0.0": "a" * 64, "1.1.0": "b" * 64, "1.2.0": "c" * 64}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _stamp(model_version: str, revision: str) -> dict[str, Any]:
    return {
        "Variables": {
            "RELEASE_MODEL_VERSION": model_version,
            "RELEASE_MODEL_SHA256": SHA[model_version],
            "RELEASE_CODE_REVISION": revision,
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
    description = f"model {model_version} sha256 {SHA[model_version]} code {revision}"
    return str(client.publish_version(FunctionName=FUNCTION, Description=description)["Version"])


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
    rows = release.status(three_releases, FUNCTION)
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
    assert by_alias["live"].description == f"model 1.2.0 sha256 {SHA['1.2.0']} code 3333333"


def test_status_command_prints_alias_version_and_model(
    three_releases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the CLI's status command runs
    code = release.main(["status", "--function", FUNCTION], client=three_releases)
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
    assert release.main(["status", "--function", FUNCTION, "--json"], client=three_releases) == 0
    [row] = json.loads(capsys.readouterr().out)
    # THEN it shows both the version serving most traffic and the canary's share
    assert row["version"]["version"] == "2"
    assert row["routing"] == {"3": 0.1}


def test_rollback_to_previous_points_live_at_the_version_before(three_releases: Any) -> None:
    # WHEN rolled back with the default target
    done = release.rollback(three_releases, FUNCTION)
    # THEN live serves version 2 (model 1.1.0) and the alias records where it came from
    assert (done.from_version, done.to_version) == ("3", "2")
    assert live(three_releases) == "2"
    alias = three_releases.get_alias(FunctionName=FUNCTION, Name="live")
    assert "rolled back from version 3" in alias["Description"]
    assert release.status(three_releases, FUNCTION, "live")[0].version.model_version == "1.1.0"


def test_rollback_twice_keeps_going_back(three_releases: Any) -> None:
    # WHEN rolled back twice THEN live ends on version 1
    release.rollback(three_releases, FUNCTION)
    release.rollback(three_releases, FUNCTION)
    assert live(three_releases) == "1"


def test_rollback_to_a_named_version(three_releases: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the CLI rolls back to version 1 explicitly
    code = release.main(["rollback", "--function", FUNCTION, "--to", "1"], client=three_releases)
    # THEN live serves version 1 and the output says so, with the model now served
    assert code == 0
    assert live(three_releases) == "1"
    out = capsys.readouterr().out
    assert f"{FUNCTION}:live now serves version 1 (was 3)" in out
    assert "model 1.0.0" in out


def test_rollback_refuses_when_there_is_no_previous_version(
    lambda_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a single published version behind `live`
    publish(lambda_client, "1.0.0", "1111111")
    lambda_client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
    # WHEN asked to roll back
    code = release.main(["rollback", "--function", FUNCTION], client=lambda_client)
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
    with pytest.raises(release.ReleaseError, match=reason.replace("$", r"\$")):
        release.rollback(three_releases, FUNCTION, to=target)
    # THEN live stays where it was
    assert live(three_releases) == "3"


def test_rollback_refuses_during_a_deployment(three_releases: Any) -> None:
    # GIVEN a canary in progress (the alias splits traffic)
    three_releases.update_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}},
    )
    # WHEN a manual rollback is asked THEN it refuses and points at CodeDeploy's own rollback
    with pytest.raises(release.ReleaseError, match=r"mid-deployment.*stop-deployment"):
        release.rollback(three_releases, FUNCTION)
    assert live(three_releases) == "2"


def record_deployment(current: str, target: str, status: str, function: str = FUNCTION) -> None:
    """A CodeDeploy deployment of `live` from `current` to `target`, as SAM's alias update creates."""
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    if "app" not in codedeploy.list_applications()["applications"]:
        codedeploy.create_application(applicationName="app", computePlatform="Lambda")
        codedeploy.create_deployment_group(
            applicationName="app",
            deploymentGroupName="ApiFunctionDeploymentGroup",
            serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
        )
    appspec = {
        "version": 0.0,
        "Resources": [
            {
                "ApiFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": function,
                        "Alias": "live",
                        "CurrentVersion": current,
                        "TargetVersion": target,
                    },
                }
            }
        ],
    }
    deployment = codedeploy.create_deployment(
        applicationName="app",
        deploymentGroupName="ApiFunctionDeploymentGroup",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
    )["deploymentId"]
    # moto leaves deployments "Created"; set the outcome CodeDeploy would have reached.
    codedeploy_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].deployments[deployment].status = status


def test_previous_is_the_version_the_current_one_replaced(
    three_releases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN version 2 went live from 1, version 3 failed its golden-set gate (live stayed on 2),
    # then version 4 went live from 2; versions 1-4 are all still published
    publish(three_releases, "1.2.0", "4444444")
    record_deployment("1", "2", "Succeeded")
    record_deployment("2", "3", "Failed")
    record_deployment("2", "4", "Succeeded")
    record_deployment("3", "1", "Succeeded", function="another-function")
    three_releases.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="4")
    # WHEN rolled back to "previous"
    code = release.main(["rollback", "--function", FUNCTION], client=three_releases)
    # THEN live goes back to 2, the version that served before 4, not to 3 which never served
    assert code == 0
    assert live(three_releases) == "2"
    out = capsys.readouterr().out
    assert "now serves version 2 (was 4)" in out
    assert "skipped versions 3: not what served live before" in out


def test_after_a_manual_rollback_previous_skips_refused_versions(three_releases: Any) -> None:
    # GIVEN 1 -> 2 succeeded, 2 -> 3 failed, and live serves 4 without a deployment record
    publish(three_releases, "1.2.0", "4444444")
    record_deployment("1", "2", "Succeeded")
    record_deployment("2", "3", "Failed")
    three_releases.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="4")
    history = release.deployment_history(
        boto3.client("codedeploy", region_name="us-east-1"), FUNCTION, "live"
    )
    assert history is not None
    assert (history.served, history.refused) == (frozenset({"1", "2"}), frozenset({"3"}))
    # WHEN live (on 4, which no deployment made live) is rolled back THEN 3 is passed over
    done = release.rollback(three_releases, FUNCTION, history=history)
    assert (done.to_version, done.skipped) == ("2", ("3",))


def test_previous_refuses_when_every_older_version_was_refused(three_releases: Any) -> None:
    # GIVEN versions 1 and 2 both failed their deployments and live serves 3
    record_deployment("3", "1", "Failed")
    record_deployment("3", "2", "Stopped")
    history = release.deployment_history(
        boto3.client("codedeploy", region_name="us-east-1"), FUNCTION, "live"
    )
    # WHEN asked for the previous version THEN it refuses, naming the refused versions
    with pytest.raises(release.ReleaseError, match=r"CodeDeploy refused versions 1, 2"):
        release.rollback(three_releases, FUNCTION, history=history)
    assert live(three_releases) == "3"


def test_without_codedeploy_history_previous_is_the_newest_older_version_and_says_so(
    three_releases: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert release.main(["rollback", "--function", FUNCTION], client=three_releases) == 0
    assert live(three_releases) == "2"
    assert "no CodeDeploy history" in capsys.readouterr().err


def test_appspec_in_yaml_with_lowercase_keys_and_function_arns_is_understood() -> None:
    revision = {
        "appSpecContent": {
            "content": "version: 0.0\nresources:\n  - api:\n      type: AWS::Lambda::Function\n"
            "      properties:\n        name: arn:aws:lambda:us-east-1:1:function:f:live\n"
            "        alias: live\n        currentversion: '5'\n        targetversion: '6'\n"
        }
    }
    [target] = release._lambda_targets(revision)
    assert release._function_name(target["name"]) == "f"
    assert (target["currentversion"], target["targetversion"]) == ("5", "6")
