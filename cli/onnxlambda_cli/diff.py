"""Compare two model contracts and say which version bump the difference needs.

    onnxlambda diff OLD NEW [--json] [--require-bump]
    onnxlambda diff --config-env prod NEW --require-bump      (OLD = what prod's `live` alias serves)

OLD and NEW are each one of:
    models/penguins                 a model directory (its manifest.json)
    path/to/manifest.json           a manifest file
    git:HEAD~1[:models/x/manifest.json]   a committed manifest (path defaults to NEW's)
    https://<api>/                  a deployed API's GET /model (SigV4-signed for execute-api
                                    hosts when AWS credentials are available: AuthMode=IAM)
    lambda:<function>[:<alias|version>]   GET /model through Lambda Invoke (default alias: live)

Every difference is classified breaking / compatible / model / metadata (see
onnxlambda_cli.contract_diff); the rule is breaking -> major, compatible -> minor, anything
else -> patch. With --require-bump the command exits 2, the table being the reason, when NEW's
version is a smaller bump than its changes need (or no bump, or older): `make deploy` runs it
against the deployed `live` alias before `sam deploy`. With --config-env and nothing deployed yet
(no function or no alias) it says so and exits 0: a first release has nothing to break.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onnxlambda.contract.manifest import MANIFEST_FILE
from onnxlambda.contract.strict import ManifestError
from onnxlambda.release.gate import http_event
from onnxlambda_cli.contract_diff import Contract, ContractDiff, diff, format_table

EXIT_REFUSED = 2
EXIT_UNREADABLE = 1
HTTP_TIMEOUT_S = 30


class SourceError(Exception):
    """A contract that cannot be read (say which and why)."""


class NothingDeployedError(SourceError):
    """The function or alias does not exist yet: a first release."""


def load_json(source: str, *, lambda_client: Any = None, new_path: str | None = None) -> dict[str, Any]:
    """The manifest (or GET /model body) a source names, as JSON."""
    if source.startswith("lambda:"):
        return from_lambda(source.removeprefix("lambda:"), lambda_client)
    if source.startswith(("http://", "https://")):
        return from_url(source)
    if source.startswith("git:"):
        from onnxlambda_cli import changelog

        ref = source
        if ref.count(":") == 1 and new_path:
            path = Path(new_path)
            path = path / MANIFEST_FILE if path.is_dir() else path
            ref = f"{ref}:{path.resolve().relative_to(changelog.ROOT)}"
        return changelog.load(ref)
    path = Path(source)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{source}: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceError(f"{source}: not a JSON object")
    return data


def from_lambda(target: str, client: Any = None) -> dict[str, Any]:
    """GET /model of `function[:qualifier]` (default `live`) through Lambda Invoke, the way the
    pre-traffic hook talks to a version; an alias is resolved first so the output names a version."""
    function, _, qualifier = target.partition(":")
    if target.startswith("arn:"):  # arn:aws:lambda:region:acct:function:name[:qualifier]
        parts = target.split(":")
        function, qualifier = ":".join(parts[:7]), parts[7] if len(parts) > 7 else ""
    qualifier = qualifier or "live"
    if client is None:
        import boto3

        client = boto3.client("lambda")
    from botocore.exceptions import ClientError

    try:
        version = qualifier
        if not qualifier.isdigit() and qualifier != "$LATEST":
            version = str(client.get_alias(FunctionName=function, Name=qualifier)["FunctionVersion"])
        response = client.invoke(
            FunctionName=function,
            Qualifier=version,
            InvocationType="RequestResponse",
            Payload=json.dumps(http_event("GET", "/model")).encode(),
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise NothingDeployedError(f"lambda:{function}:{qualifier} does not exist") from exc
        raise SourceError(f"lambda:{function}:{qualifier}: {exc}") from exc
    payload = response["Payload"].read()
    if response.get("FunctionError"):
        raise SourceError(f"lambda:{function}:{version} failed: {payload[:300]!r}")
    result = json.loads(payload)
    if not isinstance(result, dict) or result.get("statusCode") != 200:
        raise SourceError(f"lambda:{function}:{version} GET /model answered {str(result)[:300]}")
    body = json.loads(result.get("body") or "null")
    if not isinstance(body, dict):
        raise SourceError(f"lambda:{function}:{version} GET /model is not a JSON object")
    return body


def model_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path.rstrip("/")
    if not path.endswith("/model"):
        path += "/model"
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def signing_region(url: str) -> str | None:
    """The region of an API Gateway execute-api host (whose IAM auth needs SigV4), else None."""
    host = urllib.parse.urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 5 and parts[1] == "execute-api" and host.endswith(".amazonaws.com"):
        return parts[2]
    return None


def sigv4_headers(url: str, region: str, credentials: Any) -> dict[str, str]:
    """Headers of a SigV4-signed GET for execute-api (AuthMode=IAM)."""
    # IAM-authorized HTTP API routes need SigV4-signed requests from a principal allowed execute-api:
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-access-control-iam.html
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def from_url(url: str) -> dict[str, Any]:
    target = model_url(url)
    headers = {"accept": "application/json"}
    region = signing_region(target)
    if region:
        import boto3

        credentials = boto3.Session().get_credentials()
        if credentials is not None:
            headers.update(sigv4_headers(target, region, credentials.get_frozen_credentials()))
    request = urllib.request.Request(target, headers=headers, method="GET")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 - the user's URL
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise SourceError(f"GET {target}: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceError(f"GET {target}: not a JSON object")
    return data


def contract(source: str, data: dict[str, Any]) -> Contract:
    try:
        return Contract.from_json(data)
    except ManifestError as exc:
        raise SourceError(f"{source}: not a model contract: {exc}") from exc


def run(old: str, new: str, *, lambda_client: Any = None) -> ContractDiff:
    new_data = load_json(new, lambda_client=lambda_client)
    old_data = load_json(old, lambda_client=lambda_client, new_path=new)
    return diff(contract(old, old_data), contract(new, new_data))


def main(argv: Sequence[str] | None = None, lambda_client: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="onnxlambda diff", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sources", nargs="+", metavar="OLD NEW", help="OLD and NEW (only NEW with --config-env)"
    )
    parser.add_argument(
        "--config-env", help="samconfig.toml environment: OLD is what its stack's `live` alias serves"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--require-bump",
        action="store_true",
        help=f"exit {EXIT_REFUSED} when NEW's version bump is smaller than its changes need",
    )
    args = parser.parse_args(argv)
    if args.config_env:
        if len(args.sources) != 1:
            parser.error("with --config-env give only NEW")
        from onnxlambda_cli.release import ReleaseError
        from onnxlambda_cli.release.environments import deploy_region, function_name

        try:
            old = f"lambda:{function_name(args.config_env)}:live"
            region = deploy_region(args.config_env)
        except ReleaseError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        if lambda_client is None:
            import boto3

            lambda_client = boto3.client("lambda", region_name=region)
        new = args.sources[0]
    elif len(args.sources) == 2:
        old, new = args.sources
    else:
        parser.error("give OLD and NEW")
    try:
        result = run(old, new, lambda_client=lambda_client)
    except NothingDeployedError as exc:
        print(f"nothing deployed yet ({exc}): a first release, no contract to compare", file=sys.stderr)
        return 0
    except SourceError as exc:
        print(f"onnxlambda diff: cannot read {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result, (old, new)))
    if args.require_bump and not result.bump_ok:
        print(f"refused: {result.verdict()}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
