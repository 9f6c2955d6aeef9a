"""The README's SigV4 snippet runs and signs the request as API Gateway's IAM authorizer expects."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.conftest import ROOT


def security_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Security") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README Security section has no python snippet"
    return match.group(1)


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback server that records each request's headers and body, and answers 200 {}."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_readme_snippet_signs_with_sigv4_for_execute_api(
    recorder: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN static credentials in the environment, as a caller's profile or role would provide
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-example")
    base, seen = recorder
    namespace: dict[str, Any] = {}
    exec(security_snippet(), namespace)  # the README's own code, under test
    # WHEN the snippet's predict() is called
    answer = namespace["predict"](base, [{"island": "Biscoe"}], region="eu-west-1")
    # THEN it sent one POST /predict with the JSON body and a SigV4 signature for execute-api
    assert answer == {}
    [request] = seen
    assert request["path"] == "/predict"
    assert json.loads(request["body"]) == {"instances": [{"island": "Biscoe"}]}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/eu-west-1/execute-api/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}",
        headers["authorization"],
    )
    assert re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
    assert headers["x-amz-security-token"] == "token-example"
