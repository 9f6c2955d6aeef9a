"""`onnxlambda settings [--check]`: write (or check) docs/reference/settings.md from the catalogue
in layers/core/onnxlambda/settings.py, the one table of every environment variable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from onnxlambda.settings import reference

ROOT = Path(__file__).resolve().parents[2]  # the repository (cli/onnxlambda_cli/<this file>)
REFERENCE = ROOT / "docs" / "reference" / "settings.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onnxlambda settings", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed page is stale")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        if not REFERENCE.exists() or REFERENCE.read_text() != text:
            print(f"{REFERENCE} is stale: run `onnxlambda settings`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
