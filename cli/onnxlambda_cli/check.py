"""`onnxlambda check DIR ...`: is this model directory able to predict, as the function would?

Ready means able to predict, not only loadable: the directory is loaded exactly as the Lambda
function loads it (sha256 before a session exists, the graph against the manifest), then its
golden set is answered through the same data plane and compared within the manifest's
tolerances. `make build` runs it on the built model layer, so a model that loads but answers
wrongly never reaches a deploy; the function itself runs no inference at init (cold start), and
the pre-traffic hook repeats the golden set against the deployed version.

Exit status: 0 every directory passes, 1 one does not (each problem printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from onnxlambda.contract.errors import ModelLoadError, ServingError
from onnxlambda.contract.manifest import load_golden
from onnxlambda.release.golden import check_golden_set, compare_predictions, golden_request
from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings


def problems(model_dir: Path) -> list[str]:
    """Why `model_dir` could not serve its own golden set; empty when it can."""
    try:
        runtime = ModelRuntime.load(model_dir)
        golden = load_golden(model_dir, runtime.manifest)
    except (ModelLoadError, OSError, ValueError) as exc:
        return [f"not loadable: {exc}"]
    found = [str(m) for m in check_golden_set(runtime.manifest, golden)]
    rows = len(golden.cases)
    settings = Settings(model_dir, max_rows=max(rows, 1), max_body_bytes=1 << 30, max_error_details=20,
                        ort_intra_op_threads=1)  # fmt: skip
    try:
        body = Service(runtime, settings).predict(golden_request(golden), request_id="golden")
    except ServingError as err:
        return [*found, f"the golden set is refused by the model's own contract: {err}"]
    return found + [str(m) for m in compare_predictions(runtime.manifest, golden, body)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onnxlambda check", description=__doc__.split("\n")[0])
    parser.add_argument("model_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for model_dir in args.model_dirs:
        found = problems(model_dir)
        if found:
            failed = True
            print(f"{model_dir}: NOT READY", file=sys.stderr)
            for problem in found:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"{model_dir}: ready (golden set reproduced)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
