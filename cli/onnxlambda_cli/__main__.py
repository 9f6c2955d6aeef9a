"""`onnxlambda <command> [args]`: dispatch to one module's `main(argv)` (imported only when chosen)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "import": (
        "onnxlambda_cli.importer.command",
        "your ONNX export (or MLflow dir) + reference data -> models/<name>",
    ),
    "openapi": ("onnxlambda_cli.openapi.command", "build (or --check) each model's OpenAPI document"),
    "release": ("onnxlambda_cli.release.command", "status | rollback | stamp | preflight of a release"),
    "changelog": ("onnxlambda_cli.changelog", "a CHANGELOG entry from two manifests"),
    "settings": ("onnxlambda_cli.settings_reference", "write docs/reference/settings.md from the catalogue"),
    "check": ("onnxlambda_cli.check", "is a model directory able to predict (loads, golden set reproduced)"),
    "drift-report": ("onnxlambda_cli.drift_report", "an HTML drift report (captured traffic, batch summary)"),
    # Release safety (issue 15): contract diff with the semver rule, replay of captured traffic.
    "diff": ("onnxlambda_cli.diff", "classify two model contracts' differences; --require-bump"),
    "replay": ("onnxlambda_cli.replay", "captured traffic through a candidate and the current model"),
}


def usage() -> str:
    lines = ["usage: onnxlambda <command> [args]   (onnxlambda <command> --help for its options)", ""]
    lines += [f"  {name:<14}{about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"onnxlambda: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result: int | None = module.main(rest)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
