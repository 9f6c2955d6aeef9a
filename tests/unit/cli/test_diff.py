"""`onnxlambda diff` and the release path's bump check.

The deployed side is read the way the pre-traffic hook reads a version: GET /model through Lambda
Invoke of the `live` alias. moto 5 cannot run a Python function without Docker, so the Lambda
client is a botocore Stubber whose invoke answers with what the real API handler (run in process
on the shipped model) answers to GET /model; "nothing deployed yet" runs against moto's Lambda.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from devtools.apigw import http_api_event, to_http_response
from functions.api import app
from onnxlambda_cli import diff as diff_cli
from onnxlambda_cli.release.environments import function_name
from tests.conftest import MODELS, ROOT, FakeLambdaContext
from tests.unit.release.candidates import perturb_classifier, write_candidate

LIVE_VERSION = "7"


def get_model_result() -> dict[str, Any]:
    """The API function's real answer to GET /model (the shipped penguins 1.0.0), as Invoke returns it."""
    with contextlib.redirect_stdout(io.StringIO()):  # its EMF line is not this test's output
        result: dict[str, Any] = app.lambda_handler(http_api_event("GET", "/model"), FakeLambdaContext())
    assert result["statusCode"] == 200
    return result


def stubbed_lambda(function: str, result: dict[str, Any]) -> tuple[Any, Stubber]:
    client = boto3.client("lambda", region_name="eu-west-1")
    stub = Stubber(client)
    arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function}"
    stub.add_response(
        "get_alias",
        {"AliasArn": f"{arn}:live", "Name": "live", "FunctionVersion": LIVE_VERSION},
        {"FunctionName": function, "Name": "live"},
    )
    payload = json.dumps(result).encode()
    stub.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "ExecutedVersion": LIVE_VERSION,
            "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
        },
        {
            "FunctionName": function,
            "Qualifier": LIVE_VERSION,
            "InvocationType": "RequestResponse",
            "Payload": ANY,
        },
    )
    return client, stub


def drop_torgersen(manifest: dict[str, Any]) -> None:
    island = next(f for f in manifest["features"] if f["name"] == "island")
    island["categories"] = ["Biscoe", "Dream"]


@pytest.mark.parametrize(("version", "code"), [("1.1.0", 2), ("2.0.0", 0)])
def test_release_path_refuses_a_breaking_change_with_a_minor_bump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, code: int
) -> None:
    # GIVEN prod's `live` alias serving penguins 1.0.0, and a candidate that no longer accepts
    # island=Torgersen (a removed category: breaking)
    function = function_name("prod")
    client, stub = stubbed_lambda(function, get_model_result())
    new = write_candidate("penguins", tmp_path / "new", version=version, manifest_edit=drop_torgersen)
    # WHEN the release path checks the bump (what `make deploy ENV=prod` runs before sam deploy)
    with stub:
        exit_code = diff_cli.main(["--require-bump", "--config-env", "prod", str(new)], lambda_client=client)
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    # THEN a minor bump is refused with exit 2 and the table as the reason; a major bump passes
    assert exit_code == code
    rows = [re.split(r"\s{2,}", line) for line in out.splitlines()]
    assert ["breaking", "major", "feature 'island'", "categories removed", "[Torgersen]", "-"] in [
        r[:6] for r in rows
    ]
    assert out.rstrip().splitlines()[0] == f"old: lambda:{function}:live"
    if code:
        assert f"penguins 1.0.0 -> {version}: breaking; needs a major bump (at least 2.0.0)" in err
        assert err.rstrip().endswith("REFUSED")
    else:
        assert out.rstrip().endswith("ok")
        assert err == ""


def test_release_path_passes_a_first_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an account where the stack's function does not exist yet (moto's Lambda)
    with mock_aws():
        client = boto3.client("lambda", region_name="eu-west-1")
        # WHEN the release path checks the bump
        exit_code = diff_cli.main(
            ["--require-bump", "--config-env", "prod", str(MODELS / "penguins")], lambda_client=client
        )
    # THEN there is nothing to break: it says so and lets the deploy go on
    assert exit_code == 0
    assert "nothing deployed yet" in capsys.readouterr().err


def test_a_function_that_cannot_answer_stops_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a live version whose GET /model fails (e.g. the model did not load: 503)
    function = function_name("prod")
    failing = {"statusCode": 503, "body": json.dumps({"status": "not_ready"})}
    client, stub = stubbed_lambda(function, failing)
    with stub:
        exit_code = diff_cli.main(
            ["--require-bump", "--config-env", "prod", str(MODELS / "penguins")], lambda_client=client
        )
    # THEN the check cannot vouch for the release: a non-zero exit stops `make deploy`
    assert exit_code == diff_cli.EXIT_UNREADABLE
    assert "GET /model answered" in capsys.readouterr().err


def test_make_deploy_checks_the_bump_before_sam_deploy() -> None:
    printed = subprocess.run(
        ["make", "-n", "deploy", "ENV=prod", "MODEL=diabetes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    [check] = [i for i, line in enumerate(printed) if "onnxlambda diff" in line]
    [deploy] = [i for i, line in enumerate(printed) if "sam deploy" in line]
    assert printed[check].endswith("onnxlambda diff --require-bump --config-env prod models/diabetes")
    assert check < deploy


# -- sources ----------------------------------------------------------------------------------


@pytest.fixture
def api_url() -> Iterator[str]:
    """The real API handler (in process, shipped penguins) behind a loopback HTTP server."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                result = app.lambda_handler(http_api_event("GET", self.path), FakeLambdaContext())
            response = to_http_response(result)
            self.send_response(response.status)
            for k, v in response.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_a_deployed_url_against_a_model_directory(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed API (its GET /model) and a retrained candidate: new weights and metrics
    def retrained(manifest: dict[str, Any]) -> None:
        manifest["metrics"][0]["value"] = 0.99

    new = write_candidate(
        "penguins",
        tmp_path / "new",
        version="1.1.0",
        graph_edit=perturb_classifier(0.05, 1),
        manifest_edit=retrained,
    )
    # WHEN diffed as JSON
    assert diff_cli.main([api_url, str(new), "--json", "--require-bump"]) == 0
    body = json.loads(capsys.readouterr().out)
    # THEN compatible (metrics changed), a minor bump is enough, and the baselines were not compared
    assert body["classification"] == "compatible"
    assert {(c["where"], c["level"]) for c in body["changes"]} == {
        ("metric 'accuracy'", "compatible"),
        ("model.onnx", "model"),
    }
    assert body["bump_ok"] is True
    assert body["notes"] == ["baselines not compared: a GET /model body does not carry them"]


def test_a_committed_manifest_from_git(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the manifest as committed at HEAD and the same file in the tree
    code = diff_cli.main(["git:HEAD", str(MODELS / "penguins" / "manifest.json"), "--require-bump"])
    # THEN identical and accepted
    assert code == 0
    assert capsys.readouterr().out.rstrip().endswith("penguins 1.0.0 -> 1.0.0: identical (no change)")


def test_unreadable_sources_say_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text('{"name": "x"}')
    assert diff_cli.main([str(tmp_path), str(MODELS / "penguins")]) == diff_cli.EXIT_UNREADABLE
    assert f"{tmp_path}: not a model contract" in capsys.readouterr().err
    assert diff_cli.main([str(tmp_path / "absent"), str(MODELS / "penguins")]) == diff_cli.EXIT_UNREADABLE


def test_execute_api_urls_are_signed_for_iam_auth() -> None:
    # GIVEN an API Gateway URL (AuthMode=IAM needs SigV4 for execute-api)
    url = diff_cli.model_url("https://abc123.execute-api.eu-west-1.amazonaws.com")
    assert url == "https://abc123.execute-api.eu-west-1.amazonaws.com/model"
    region = diff_cli.signing_region(url)
    assert region == "eu-west-1"
    headers = diff_cli.sigv4_headers(url, region, Credentials("AKIDEXAMPLE", "secret"))
    # THEN the request carries a SigV4 signature scoped to execute-api in that region
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    # AND other hosts (a local front, a custom domain) are not signed
    assert diff_cli.signing_region("http://127.0.0.1:3000/model") is None
