"""Reading a CloudFormation (SAM) template the way CloudFormation reads it.

`load_template` turns the YAML short forms (!Ref, !Sub, !GetAtt a.b, !If [...], !Condition name)
into their long JSON forms, so code and tests see what a deployment sees; `references` walks a
value for the names it refers to. The one reader of template.yaml for the release stamp
(onnxlambda_cli.stamp), the deploy preflight, the infrastructure tests and the local tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation short forms (!Ref, !Sub, !GetAtt a.b, ...) read as their long forms."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # !Ref and !Condition are the two short forms without the "Fn::" prefix in their long form.
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_CfnLoader.add_multi_constructor("!", _short_form)


def load_template(text: str) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return template


def references(value: Any, conditions: Mapping[str, Any], seen: set[str] | None = None) -> Iterator[str]:
    """Names a value refers to: Ref and GetAtt targets, ${...} in Fn::Sub, through Fn::If its condition's."""
    seen = set() if seen is None else seen
    if isinstance(value, list):
        for item in value:
            yield from references(item, conditions, seen)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner.split(".", 1)[0]  # SAM's `!Ref Function.Version` names the function
            elif key == "Fn::GetAtt":
                yield str(inner[0] if isinstance(inner, list) else inner).split(".", 1)[0]
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                found = (name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(text))
                yield from (name for name in found if name not in variables)
                yield from references(variables, conditions, seen)
            elif key == "Fn::If" or (key == "Condition" and isinstance(inner, str)):
                # {"Condition": name} inside a condition; an IAM statement's Condition is a mapping
                name = inner[0] if key == "Fn::If" else inner
                if name not in seen:
                    seen.add(name)
                    yield from references(conditions.get(name), conditions, seen)
                if key == "Fn::If":
                    yield from references(inner[1:], conditions, seen)
            else:
                yield from references(inner, conditions, seen)


__all__ = ["load_template", "references"]
