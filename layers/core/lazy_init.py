"""Rewrite a package `__init__.py` that only re-exports names into a lazy one (PEP 562).

Powertools' `event_handler/__init__.py` imports every resolver (AppSync pulls in asyncio, Bedrock,
VPC Lattice, ...) and `utilities/data_classes/__init__.py` every event class, so importing the one
HTTP resolver we use costs them all at every cold start. The rewritten `__init__` exports the same
names and loads each one's module on first use; submodule imports are unchanged. A package whose
`__init__` does anything but re-export is refused, so a Powertools upgrade that changes that fails
the layer build instead of changing behaviour.

Usage (layers/core/Makefile): python lazy_init.py <site-packages dir> <package> [<package> ...]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

TEMPLATE = """{docstring}
# Generated at layer build time by layers/core/lazy_init.py from the package's own __init__: the
# same names, each imported on first use, so importing one submodule does not import them all.
import importlib as _importlib

_EXPORTS = {exports}
__all__ = {all_names}


def __getattr__(name):
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {{__name__!r}} has no attribute {{name!r}}") from None
    value = getattr(_importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
"""


def lazy_source(source: str, package: str) -> str:
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    exports: dict[str, tuple[str, str]] = {}
    all_names: list[str] | None = None
    for i, node in enumerate(tree.body):
        if i == 0 and docstring is not None and isinstance(node, ast.Expr):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level <= 1:
            module = node.module if node.level == 0 else f"{package}.{node.module}"
            for alias in node.names:
                if alias.name == "*":
                    raise ValueError(f"{package}: star import at line {node.lineno}")
                exports[alias.asname or alias.name] = (module, alias.name)
        elif (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
            and isinstance(node.value, ast.List)
        ):
            all_names = [ast.literal_eval(e) for e in node.value.elts]
        else:
            raise ValueError(f"{package}: __init__ does more than re-export (line {node.lineno})")
    names = all_names if all_names is not None else sorted(exports)
    missing = [n for n in names if n not in exports]
    if missing:
        raise ValueError(f"{package}: __all__ names not imported: {missing}")
    return TEMPLATE.format(
        docstring=f'"""{docstring}"""' if docstring else "", exports=repr(exports), all_names=repr(names)
    )


def main(site: Path, packages: list[str]) -> None:
    for package in packages:
        init = site.joinpath(*package.split("."), "__init__.py")
        init.write_text(lazy_source(init.read_text(), package))
        print(f"lazy __init__: {package} ({init.relative_to(site)})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
