"""`onnxlambda import`: a user's ONNX export (or MLflow onnx-flavor directory) plus reference data
becomes a model directory the server loads, with model.onnx byte for byte the user's file.

    graph.py     the file: signature, class labels, what cannot be served (onnx + onnxruntime)
    data.py      the reference CSV, typed by the tensor each column feeds; the data fingerprint
    layout.py    which column feeds which graph input (one per column, packed [N, F], or mixed)
    contract.py  features, ranges, categories, classes, golden rows
    metrics.py   held-out metrics in numpy
    mlflow.py    an MLflow model directory (MLmodel + signature), read as files
    card.py      MODEL_CARD.md
    writer.py    the directory, and its OpenAPI document
    options.py   `ImportOptions` (the command's flags) and `ImportResult`
    columns.py   the data's columns as features: target, order, typed columns, each one's contract
    evidence.py  the model run the server's way: nullability, output baseline, golden set, metrics
    api.py       `import_model(ImportOptions)`: the steps in order (what the command and the
                 example models' training scripts call)
    command.py   the command line
"""

from onnxlambda_cli.importer.api import default_name, import_model
from onnxlambda_cli.importer.errors import ImportInputError
from onnxlambda_cli.importer.options import ImportOptions, ImportResult

__all__ = ["ImportInputError", "ImportOptions", "ImportResult", "default_name", "import_model"]
