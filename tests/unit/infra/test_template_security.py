"""template.yaml and samconfig.toml: who may call, how fast, with which rights, and for how long logs live.

The template is read as CloudFormation would read it, conditions evaluated for each AuthMode, so
these tests say what a deployment with given parameters actually gets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tomllib
from typing import Any

import pytest

from onnxlambda_cli.cloudformation import load_template
from tests.conftest import ROOT

TEMPLATE: dict[str, Any] = load_template((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
NO_VALUE = object()


def parameters(**overrides: str) -> dict[str, str]:
    values = {k: str(v.get("Default", "")) for k, v in TEMPLATE["Parameters"].items()}
    values.update(overrides)
    return values


def condition(name: str, params: dict[str, str]) -> bool:
    return bool(evaluate(TEMPLATE["Conditions"][name], params))


def evaluate(node: Any, params: dict[str, str]) -> Any:  # noqa: PLR0911 - one return per intrinsic
    """Resolve Ref (parameters), Fn::Equals/Not/And/Or/If and AWS::NoValue; keep everything else."""
    if isinstance(node, list):
        return [v for v in (evaluate(x, params) for x in node) if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        [(key, arg)] = node.items()
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Condition":
            return condition(arg, params)
        if key == "Fn::Equals":
            return evaluate(arg[0], params) == evaluate(arg[1], params)
        if key == "Fn::Not":
            return not evaluate(arg[0], params)
        if key == "Fn::And":
            return all(evaluate(a, params) for a in arg)
        if key == "Fn::Or":
            return any(evaluate(a, params) for a in arg)
        if key == "Fn::If":
            return evaluate(arg[1] if condition(arg[0], params) else arg[2], params)
    out = {k: evaluate(v, params) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def http_routes() -> list[tuple[str, str, str, Any]]:
    """(function, METHOD, path, ApiId) for every HttpApi event in the template."""
    routes = []
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                props = event.get("Properties") or {}
                routes.append(
                    (logical_id, props.get("Method", "ANY"), props.get("Path", "/"), props.get("ApiId"))
                )
    return routes


def deployed_api(auth_mode: str, **overrides: str) -> dict[str, Any]:
    api: dict[str, Any] = evaluate(
        RESOURCES["HttpApi"]["Properties"], parameters(AuthMode=auth_mode, **overrides)
    )
    return api


def test_every_route_is_on_the_one_api_whose_auth_we_control() -> None:
    # GIVEN every HttpApi event of every function
    routes = http_routes()
    assert routes
    # THEN each is attached to HttpApi (an implicit API would have no authorizer at all)
    assert [r for r in routes if r[3] != {"Ref": "HttpApi"}] == []


@pytest.mark.parametrize(
    ("mode", "security", "scheme"),
    [
        ("IAM", [{"AWS_IAM": []}], "AWS_IAM"),
        ("JWT", [{"JwtAuthorizer": []}], "JwtAuthorizer"),
        ("NONE", None, None),
    ],
)
def test_each_auth_mode_secures_every_route(mode: str, security: Any, scheme: str | None) -> None:
    # GIVEN the API as deployed with AuthMode=mode
    api = deployed_api(mode, JwtIssuer="https://issuer.example", JwtAudience="client-1")
    body = api["DefinitionBody"]
    # THEN every route the functions declare carries that mode's security requirement
    for function, method, path, _ in http_routes():
        key = "x-amazon-apigateway-any-method" if method == "ANY" else method.lower()
        operation = body["paths"].get(path, {}).get(key)
        assert operation is not None, (
            f"{method} {path} ({function}) is not in HttpApi DefinitionBody: it would be open"
        )
        assert operation.get("security") == security, (mode, method, path)
    # AND only that mode's scheme is defined
    schemes = body.get("components", {}).get("securitySchemes")
    assert (list(schemes) if schemes else None) == ([scheme] if scheme else None)


def test_iam_mode_is_sigv4_and_jwt_mode_checks_issuer_and_audience() -> None:
    iam = deployed_api("IAM")["DefinitionBody"]["components"]["securitySchemes"]["AWS_IAM"]
    assert iam["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert (iam["type"], iam["name"], iam["in"]) == ("apiKey", "Authorization", "header")
    jwt = deployed_api("JWT", JwtIssuer="https://cognito-idp.us-east-1.amazonaws.com/pool", JwtAudience="app")
    authorizer = jwt["DefinitionBody"]["components"]["securitySchemes"]["JwtAuthorizer"][
        "x-amazon-apigateway-authorizer"
    ]
    assert authorizer == {
        "type": "jwt",
        "identitySource": "$request.header.Authorization",
        "jwtConfiguration": {
            "issuer": "https://cognito-idp.us-east-1.amazonaws.com/pool",
            "audience": ["app"],
        },
    }


def test_the_template_refuses_an_open_prod_and_a_jwt_mode_without_issuer() -> None:
    rules = TEMPLATE["Rules"]
    prod = rules["ProdIsNeverOpen"]
    # GIVEN Stage=prod THEN the rule applies and its assertion fails exactly for AuthMode=NONE
    assert evaluate(prod["RuleCondition"], parameters(Stage="prod"))
    assert not evaluate(prod["Assertions"][0]["Assert"], parameters(Stage="prod", AuthMode="NONE"))
    assert evaluate(prod["Assertions"][0]["Assert"], parameters(Stage="prod", AuthMode="JWT"))
    jwt = rules["JwtNeedsIssuerAndAudience"]
    assert not evaluate(jwt["Assertions"][0]["Assert"], parameters(AuthMode="JWT", JwtIssuer="https://i"))
    assert evaluate(
        jwt["Assertions"][0]["Assert"], parameters(AuthMode="JWT", JwtIssuer="https://i", JwtAudience="a")
    )


def samconfig_overrides(env: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    raw = config[env]["deploy"]["parameters"].get("parameter_overrides", "")
    return dict(item.split("=", 1) for item in shlex.split(raw))


def test_prod_configuration_never_deploys_an_open_endpoint() -> None:
    # GIVEN the prod deploy parameters in samconfig.toml, on top of the template defaults
    overrides = samconfig_overrides("prod")
    effective = parameters(**overrides)
    # THEN prod is authenticated, says so explicitly, and is throttled at the stage; it reserves no
    # concurrency by default (that needs an account quota of N + 100: docs/releasing.md)
    assert overrides.get("Stage") == "prod"
    assert overrides.get("AuthMode") in {"IAM", "JWT"}
    assert effective["AuthMode"] != "NONE"
    assert int(effective["ReservedConcurrency"]) == -1
    assert int(effective["ThrottlingRateLimit"]) > 0
    # AND the default environment is not open either (only the local HTTP front is)
    assert parameters(**samconfig_overrides("default"))["AuthMode"] != "NONE"


def test_stage_throttling_comes_from_parameters() -> None:
    settings = deployed_api("IAM", ThrottlingRateLimit="7", ThrottlingBurstLimit="11")["DefaultRouteSettings"]
    assert settings == {"ThrottlingRateLimit": "7", "ThrottlingBurstLimit": "11"}


@pytest.mark.parametrize(("value", "expected"), [("-1", None), ("0", "0"), ("25", "25")])
def test_reserved_concurrency_is_optional_and_zero_means_stopped(value: str, expected: str | None) -> None:
    props = evaluate(RESOURCES["ApiFunction"]["Properties"], parameters(ReservedConcurrency=value))
    assert props.get("ReservedConcurrentExecutions") == expected


def test_every_log_group_has_retention_and_the_optional_kms_key() -> None:
    groups = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Logs::LogGroup"}
    assert groups
    for name, group in groups.items():
        props = evaluate(group["Properties"], parameters(LogKmsKeyArn="arn:aws:kms:us-east-1:1:key/k"))
        assert props["RetentionInDays"] == parameters()["LogRetentionDays"], name
        assert props["KmsKeyId"] == "arn:aws:kms:us-east-1:1:key/k", name
        assert "KmsKeyId" not in evaluate(group["Properties"], parameters()), name
    # AND every function logs to a group of the stack (a group Lambda creates itself never expires)
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups, name


def _statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in RESOURCES.items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies") or []:
                found += [(name, s) for s in policy["PolicyDocument"]["Statement"]]
        if resource["Type"] == "AWS::Serverless::Function":
            for policy in props.get("Policies") or []:
                if isinstance(policy, dict) and "Statement" in policy:
                    found += [(name, s) for s in policy["Statement"]]
    return found


# Actions AWS offers no resource-level permission for: "*" is the only valid Resource.
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}


def test_every_policy_statement_is_scoped() -> None:
    statements = _statements()
    assert statements
    for name, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert statement["Effect"] == "Allow"
        assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
        if "*" in resources:
            assert set(actions) <= RESOURCELESS_ACTIONS, (name, actions)


def test_the_api_function_role_is_its_own_and_assumable_only_by_lambda_in_this_account() -> None:
    assert RESOURCES["ApiFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}
    role = RESOURCES["ApiFunctionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_every_checkov_suppression_has_a_reason() -> None:
    for name, resource in RESOURCES.items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            assert skip["id"].startswith("CKV_"), name
            assert len(skip.get("comment", "")) > 20, (name, skip)


# What SAM itself generates for its own HttpApi Auth, translated by the pinned aws-sam-cli.
_SAM_NATIVE = r"""
import json, sys
from samtranslator.translator.transform import transform
auth = json.loads(sys.argv[1])
template = {
    "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Api": {"Type": "AWS::Serverless::HttpApi", "Properties": {"Auth": auth}},
        "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
            "Runtime": "python3.13", "Handler": "app.h", "CodeUri": "s3://b/k",
            "Events": {"P": {"Type": "HttpApi", "Properties": {
                "ApiId": {"Ref": "Api"}, "Method": "ANY", "Path": "/{proxy+}"}}}}},
    },
}
class NoPolicies:
    def load(self): return {}
out = transform(template, {}, NoPolicies())
body = out["Resources"]["Api"]["Properties"]["Body"]
print(json.dumps({"security": body["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]["security"],
                  "schemes": body["components"]["securitySchemes"]}))
"""


@pytest.mark.parametrize(
    ("mode", "native_auth"),
    [
        ("IAM", {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}),
        (
            "JWT",
            {
                "Authorizers": {
                    "JwtAuthorizer": {
                        "IdentitySource": "$request.header.Authorization",
                        "JwtConfiguration": {"issuer": "https://issuer.example", "audience": ["client-1"]},
                    }
                },
                "DefaultAuthorizer": "JwtAuthorizer",
            },
        ),
    ],
)
def test_our_conditional_security_is_what_sam_generates_for_its_own_auth(
    mode: str, native_auth: dict[str, Any]
) -> None:
    # GIVEN SAM's own translation of the equivalent literal Auth setting
    sam_python = ROOT / ".venv-sam" / "bin" / "python"
    if not sam_python.exists():
        pytest.skip("needs .venv-sam (make setup)")
    done = subprocess.run(
        [str(sam_python), "-c", _SAM_NATIVE, json.dumps(native_auth)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    native = json.loads(done.stdout)
    # WHEN our template is resolved for the same mode
    body = deployed_api(mode, JwtIssuer="https://issuer.example", JwtAudience="client-1")["DefinitionBody"]
    # THEN the route security and the security schemes are the same as SAM's
    assert body["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]["security"] == native["security"]
    assert body["components"]["securitySchemes"] == native["schemes"]
