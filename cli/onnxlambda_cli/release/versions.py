"""Published versions of a function and what each alias serves, read from Lambda.

Each version carries its release trace in its environment (model version, model sha256, code
revision) and the stamp's version digest in its description (onnxlambda_cli.stamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TRACE_VARIABLES = {
    "model_version": "ONNXLAMBDA_RELEASE_MODEL_VERSION",
    "model_sha256": "ONNXLAMBDA_RELEASE_MODEL_SHA256",
    "code_revision": "ONNXLAMBDA_RELEASE_CODE_REVISION",
}


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    description: str
    model_version: str
    model_sha256: str
    code_revision: str
    last_modified: str

    @property
    def digest(self) -> str:
        """The version digest `make build` stamped into its description ("" for older versions)."""
        words = self.description.split()
        return words[words.index("digest") + 1] if "digest" in words[:-1] else ""


@dataclass(frozen=True, slots=True)
class AliasStatus:
    alias: str
    version: VersionInfo
    # A CodeDeploy deployment in progress: {version: weight} of the extra version.
    routing: dict[str, float]


def published_versions(client: Any, function: str) -> list[str]:
    """Published version numbers in ascending order ($LATEST is not a release)."""
    versions: list[str] = []
    for page in client.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        versions += [v["Version"] for v in page["Versions"] if v["Version"] != "$LATEST"]
    return sorted(versions, key=int)


def version_info(client: Any, function: str, version: str) -> VersionInfo:
    config = client.get_function_configuration(FunctionName=function, Qualifier=version)
    env = (config.get("Environment") or {}).get("Variables") or {}
    trace = {field: env.get(var, "unknown") for field, var in TRACE_VARIABLES.items()}
    return VersionInfo(
        version=version,
        description=config.get("Description", ""),
        last_modified=config.get("LastModified", ""),
        **trace,
    )


def status(client: Any, function: str, alias: str | None = None) -> list[AliasStatus]:
    if alias:
        aliases = [client.get_alias(FunctionName=function, Name=alias)]
    else:
        aliases = []
        for page in client.get_paginator("list_aliases").paginate(FunctionName=function):
            aliases += page["Aliases"]
    return [
        AliasStatus(
            alias=a["Name"],
            version=version_info(client, function, a["FunctionVersion"]),
            routing=dict((a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}),
        )
        for a in sorted(aliases, key=lambda a: str(a["Name"]))
    ]


def format_status(function: str, rows: Sequence[AliasStatus]) -> str:
    lines = [f"function {function}"]
    for row in rows:
        v = row.version
        lines.append(
            f"  {row.alias} -> version {v.version}: model {v.model_version} sha256 {v.model_sha256} "
            f"code {v.code_revision} (published {v.last_modified})"
        )
        for extra, weight in row.routing.items():
            lines.append(f"    canary in progress: version {extra} takes {weight:.0%} of traffic")
    if not rows:
        lines.append("  no aliases")
    return "\n".join(lines)


__all__ = ["AliasStatus", "VersionInfo", "format_status", "published_versions", "status", "version_info"]
