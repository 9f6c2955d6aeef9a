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

from devtools import release

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
    assert "refused: no previous version" in err
    assert "serves version 1, the oldest published version" in err
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
