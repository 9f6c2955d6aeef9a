"""Snippet runners: each fixture here executes one kind of documented code against something real.

A page marks a fenced block runnable with `<!-- test: <fixture name> -->` on the line before it;
tests/unit/docs/test_snippets.py hands the block's source to that fixture. A runner executes the
snippet as written (only a loopback address is substituted where the page names a port) and
checks what it did, so a snippet that no longer works, or no longer does what the page says,
fails the suite.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devtools.apigw import http_api_event, to_http_response
from tests.conftest import FakeLambdaContext

Runner = Callable[[str], None]


@contextlib.contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free loopback port, in a background thread: yields `host:port`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sigv4(monkeypatch: pytest.MonkeyPatch) -> Runner:
    """docs/security.md: a caller signs /predict with SigV4 for execute-api, as AuthMode=IAM needs.

    The snippet defines `predict(api_url, instances, region)`; it is called against a loopback
    server that records each request and answers 200 {}.
    """
    seen: list[dict[str, Any]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    # GIVEN static credentials in the environment, as a caller's profile or role would provide
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-example")

    def run(source: str) -> None:
        namespace: dict[str, Any] = {}
        with loopback(Recorder) as address:
            exec(source, namespace)  # the documented code, under test
            # WHEN the snippet's predict() is called
            answer = namespace["predict"](f"http://{address}", [{"island": "Biscoe"}], region="eu-west-1")
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

    return run


@pytest.fixture
def local_api() -> Runner:
    """docs/contract.md: a client of the local API (`make serve`'s 127.0.0.1:3000).

    Here the API function's real handler (functions/api/app.py, the penguins model) answers in
    process behind a loopback HTTP front that turns each request into the API Gateway event, as
    devtools/serve.py does for the built function. The snippet's `127.0.0.1:3000` becomes that
    front's address; what it prints must equal its own trailing `# ...` comment lines.
    """
    from functions.api import app

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = dict(self.headers.items())
            event = http_api_event(self.command, path, body=body, headers=headers, query=query)
            response = to_http_response(app.lambda_handler(event, FakeLambdaContext()))
            self.send_response(response.status)
            for key, value in response.headers.items():
                if key != "content-length":
                    self.send_header(key, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _serve  # noqa: N815 - BaseHTTPRequestHandler's naming

        def log_message(self, *_: object) -> None:
            pass

    def run(source: str) -> None:
        assert "127.0.0.1:3000" in source, "the snippet should talk to make serve's address"
        expected = [line.strip()[2:] for line in source.splitlines() if line.strip().startswith("# ")]
        printed = io.StringIO()
        with loopback(Front) as address, contextlib.redirect_stdout(printed):
            # The handler's own logs and metrics go to stdout too: only the snippet's lines count.
            exec(source.replace("127.0.0.1:3000", address), {"print": _printer(printed)})
        # THEN the snippet ran against the real handler and printed what the page says it prints
        assert _lines(printed.getvalue()) == expected

    return run


_SNIPPET_OUTPUT = "\x00snippet\x00"


def _printer(out: io.StringIO) -> Callable[..., None]:
    def snippet_print(*values: object, **_: object) -> None:
        out.write(_SNIPPET_OUTPUT + " ".join(str(v) for v in values) + "\n")

    return snippet_print


def _lines(text: str) -> list[str]:
    return [line[len(_SNIPPET_OUTPUT) :] for line in text.splitlines() if line.startswith(_SNIPPET_OUTPUT)]
