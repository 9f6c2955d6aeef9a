"""Local HTTP front: plain HTTP on loopback -> API Gateway HTTP API v2 events -> the built function
running under the Lambda Runtime Interface Emulator. What `sam local start-api` does, minus Docker.

    python -m devtools.serve --port 3000          # after `sam build`
    curl -X POST localhost:3000/predict -d @events/bodies/predict_one.json

Routes are read from the built template's HttpApi events (one greedy ANY /{proxy+}), so what
API Gateway would hand to the function reaches it here too, and a path outside every route (the
root) gets API Gateway's own 404, as it would when deployed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.apigw import HttpResponse, http_api_event, to_http_response
from devtools.rie import BUILD_DIR, BuiltFunction, EmulatedFunction
from onnxlambda_cli.cloudformation import load_template


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    function: str
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, method: str, path: str, function: str) -> Route:
        # re.escape turns "{name}" into "\\{name\\}" and "{name+}" into "\\{name\\+\\}"; the greedy
        # one spans segments, as API Gateway's {proxy+} does.
        escaped = re.escape(path)
        regex = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", escaped)
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
        return cls(method.upper(), path, function, re.compile(f"^{regex}$"))


def http_routes(build_dir: Path = BUILD_DIR) -> list[Route]:
    template = load_template((build_dir / "template.yaml").read_text())
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                props = event.get("Properties") or {}
                routes.append(Route.of(props.get("Method", "ANY"), props.get("Path", "/"), logical_id))
    return routes


class Front:
    """Dispatches HTTP requests to a pool of emulators per function (each runs one invoke at a time)."""

    def __init__(self, build_dir: Path, workers: int, env: dict[str, str]) -> None:
        self.routes = http_routes(build_dir)
        self.pools: dict[str, queue.Queue[EmulatedFunction]] = {}
        self.emulators: list[EmulatedFunction] = []
        for function in sorted({r.function for r in self.routes}):
            pool: queue.Queue[EmulatedFunction] = queue.Queue()
            for _ in range(workers):
                emulator = EmulatedFunction(
                    BuiltFunction.from_build(function, build_dir), extra_env=env
                ).start()
                self.emulators.append(emulator)
                pool.put(emulator)
            self.pools[function] = pool

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> HttpResponse:
        matched = self.match(method, path)
        if matched is None:
            return HttpResponse(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
        route, params = matched
        event = http_api_event(
            method, path, body=body, headers=headers, query=query, route_key=f"{route.method} {route.path}"
        )
        if params:
            event["pathParameters"] = params
        emulator = self.pools[route.function].get()
        try:
            result: Any = emulator.invoke(event, timeout=emulator.function.timeout_s + 5)
        except Exception:  # the function crashed or timed out: API Gateway answers 500/503
            return HttpResponse(
                500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            )
        finally:
            self.pools[route.function].put(emulator)
        return to_http_response(result)

    def close(self) -> None:
        for emulator in self.emulators:
            emulator.stop()


def _handler_class(front: Front, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "onnxlambda-local"

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            response = front.handle(self.command, path, query, dict(self.headers.items()), body)
            self.send_response(response.status)
            for key, value in response.headers.items():
                if key not in ("content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            # Every method, TRACE and made-up ones included, reaches the route table: an HTTP API
            # answers an unrouted method with its JSON 404, never the stdlib's HTML 501 page.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # Malformed request lines and headers: JSON like the rest, not the stdlib's HTML.
            body = json.dumps({"message": message or self.responses.get(code, ("Error",))[0]}).encode()
            self.send_response(code, message)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


@contextmanager
def serving(
    build_dir: Path = BUILD_DIR,
    port: int = 0,
    workers: int = 1,
    quiet: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[ThreadingHTTPServer, Front]]:
    """Start the front (and its emulators) in a background thread; for tests and benchmarks."""
    front = Front(build_dir, workers, env or {})
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(front, quiet))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, front
    finally:
        server.shutdown()
        server.server_close()
        front.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--workers", type=int, default=1, help="emulator processes per function (concurrency)"
    )
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    args = parser.parse_args(argv)
    if not (args.build_dir / "template.yaml").exists():
        print(f"no build in {args.build_dir}: run `sam build` (make build) first", file=sys.stderr)
        return 2
    with serving(args.build_dir, args.port, args.workers, quiet=False) as (server, front):
        host, port = server.server_address[:2]
        base = f"http://{host!s}:{port}"
        print(f"onnxlambda local API on {base} (built function under the Lambda Runtime Interface Emulator)")
        for route in front.routes:
            print(f"  {route.method:5} {base}{route.path}")
        example = json.dumps({"instances": [_example_row(front)]})
        print(f"try:\n  curl -s -X POST {base}/predict -H 'content-type: application/json' -d '{example}'")
        print("Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _example_row(front: Front) -> dict[str, Any]:
    """The first golden-set case of the served model: a request known to be valid."""
    for emulator in front.emulators:
        model_dir = emulator.function.opt_env().get("ONNXLAMBDA_MODEL_DIR")
        if model_dir and (Path(model_dir) / "golden.json").exists():
            golden = json.loads((Path(model_dir) / "golden.json").read_text())
            return dict(golden["cases"][0]["instance"])
    return {}


if __name__ == "__main__":
    raise SystemExit(main())
