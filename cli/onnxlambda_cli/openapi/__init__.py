"""`onnxlambda openapi`: each model's OpenAPI document, built at build time and committed.

command.py        the command line: build or --check every models/<name>/openapi.json, the lock
document.py       the document: the routes' skeleton completed; CONTRACT_VERSION
components.py     the component schemas no model changes (errors, envelopes, V2 metadata)
model_schemas.py  the schemas each manifest defines (features, rows, predictions, V2 inputs)
examples.py       examples from the golden set
reference.py      the API's shape over two reference models, which the lock pins
"""
