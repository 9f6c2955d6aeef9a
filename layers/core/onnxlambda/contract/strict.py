"""A small strict loader for frozen dataclasses: JSON shapes checked against type hints.

The contract types (onnxlambda.contract.manifest) are stdlib dataclasses rather than pydantic
models: importing pydantic was ~90 ms of the API function's cold start (docs/decisions). Every
instance is checked when it is built, by the loader or by code: field types (ints widened to
float where the field is a float, as pydantic's lax mode did), `kind`-discriminated unions,
patterns, unknown or missing fields, and the cross-field rules of each class's `_check`.
"""

from __future__ import annotations

import re
import types
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class ManifestError(ValueError):
    """A manifest or golden set that breaks the contract; `loc` is the path to the bad value."""

    def __init__(self, msg: str, loc: tuple[str | int, ...] = ()) -> None:
        self.msg, self.loc = msg, loc
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg)

    def at(self, *prefix: str | int) -> ManifestError:
        return ManifestError(self.msg, (*prefix, *self.loc))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Resolved once per class (the annotations are strings: `from __future__ import annotations`).
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _convert(tp: Any, value: object) -> object:
    """`value` checked against the annotation `tp` (JSON shapes, or already-built instances)."""
    origin = get_origin(tp)
    if tp is object:
        return value
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in get_args(tp)):
            return value
        raise ManifestError(f"must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
    if origin is Union or origin is types.UnionType:
        return _convert_union(get_args(tp), value)
    if origin is list:
        return _convert_list(get_args(tp)[0], value)
    if origin is dict:
        return _convert_dict(get_args(tp)[1], value)
    return _convert_scalar(tp, value)


def _convert_scalar(tp: Any, value: object) -> object:
    if isinstance(tp, type) and is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ManifestError(f"must be an object, got {type(value).__name__}")
        return build(tp, value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    raise ManifestError(f"must be {getattr(tp, '__name__', tp)}, got {type(value).__name__}")


def _convert_list(item: Any, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise ManifestError(f"must be a list, got {type(value).__name__}")
    out: list[object] = []
    for i, v in enumerate(value):
        try:
            out.append(_convert(item, v))
        except ManifestError as exc:
            raise exc.at(i) from None
    return out


def _convert_dict(item: Any, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"must be an object, got {type(value).__name__}")
    out: dict[str, object] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ManifestError(f"keys must be strings, got {k!r}")
        try:
            out[k] = _convert(item, v)
        except ManifestError as exc:
            raise exc.at(k) from None
    return out


def _convert_union(args: tuple[Any, ...], value: object) -> object:
    if value is None:
        if type(None) in args:
            return None
        raise ManifestError("must not be null")
    classes = [a for a in args if isinstance(a, type) and is_dataclass(a)]
    if classes:  # discriminated on `kind`, like pydantic's Field(discriminator="kind")
        if isinstance(value, tuple(classes)):
            return value
        kinds = {f.default: c for c in classes for f in fields(c) if f.name == "kind"}
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind not in kinds:
            raise ManifestError(f"kind must be one of {', '.join(map(repr, kinds))}, got {kind!r}")
        return _convert(kinds[kind], value)
    # Scalars: an exact type match wins (pydantic's smart mode), then the first that converts.
    for a in args:
        if type(value) is a:
            return value
    errors = []
    for a in args:
        if a is not type(None):
            try:
                return _convert(a, value)
            except ManifestError as exc:
                errors.append(exc.msg)
    raise ManifestError(" or ".join(errors))


def build[T](cls: type[T], data: dict[str, object]) -> T:
    declared = fields(cls)  # type: ignore[arg-type]
    unknown = sorted(set(data) - {f.name for f in declared})
    if unknown:
        raise ManifestError("unknown field").at(unknown[0])
    for f in declared:
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            raise ManifestError("field required").at(f.name)
    return cls(**data)


class Frozen:
    """Checks (and, where a float field got an int, widens) every field when an instance is built."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            name = f.name
            try:
                object.__setattr__(self, name, _convert(hints[name], getattr(self, name)))
            except ManifestError as exc:
                raise exc.at(name) from None
        patterns: dict[str, str] = getattr(self, "_PATTERNS", {})
        for name, pattern in patterns.items():
            value = getattr(self, name)
            if not re.fullmatch(pattern, value):
                raise ManifestError(f"{value!r} does not match {pattern!r}", (name,))
        try:
            self._check()
        except ManifestError:
            raise
        except ValueError as exc:
            raise ManifestError(str(exc)) from None

    def _check(self) -> None:
        """Cross-field rules; raise ValueError."""


__all__ = ["Frozen", "ManifestError", "build"]
