"""Open Inference Protocol (KServe V2) over REST: a codec onto the same data plane as /predict.

The protocol speaks in the model's own tensors, as Triton or MLServer would serve the ONNX file:
the inputs are the manifest's `inputs` (the graph's input tensors: one [N, 1] tensor per feature,
or a packed [N, F] matrix whose columns are the features in manifest order), with the datatype of
the ONNX input (float32 -> FP32, string -> BYTES, ...). Decoding here checks the *structure*
(names, datatypes, shapes, element counts, binary framing) and splits each tensor into feature
columns; the values then go through the data plane, so both protocols accept and refuse exactly
the same values, are answered by the same runtime, and are measured and captured alike. One
difference by design: an FP32 element's range is checked as the float32 it is (25.700000762939453
is float32(25.7), inside a maximum of 25.7), since that is what clients hold and the model sees.

Outputs are in the manifest's vocabulary: the label tensor carries class *names* (BYTES), the
probability tensor is [N, C] FP32 in the manifest's `labels` order (a ZipMap export included),
the regression value [N] or [N, 1] as the graph declares it.

Not accepted: datatype conversions (an FP64 tensor for an FP32 input is refused with 400, as
Triton does). JSON `null` in `data` is accepted as "missing" for features the manifest marks
nullable (an extension: V2 has no null); so is NaN in a binary float tensor.

Binary tensor data (Triton's extension, what tritonclient sends by default) is accepted for
inputs; outputs are always returned as JSON `data`, which every V2 client reads.

Errors are the one ServingError model, rendered the protocol's way: `{"error": "<code>: ..."}`.
How a body's bytes become tensor elements (JSON `data`, binary data) is in v2_data.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from onnxlambda import __version__
from onnxlambda.codecs.v2_data import dimensions, snap_to_bounds, split_body, tensor_values
from onnxlambda.contract.errors import ServingError, malformed, not_found, too_large
from onnxlambda.contract.manifest import ClassificationOutput, Feature, Manifest, ModelInput
from onnxlambda.serving.dataplane import Decoded, Inference, Observer
from onnxlambda.serving.service import Service

SERVER_NAME: Final = "onnxlambda"
PLATFORM: Final = "onnxruntime_onnx"
DATATYPES: Final = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)
DATATYPE_OF: Final = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "string": "BYTES"}
_ORT_VALUE_DATATYPE: Final = {"tensor(float)": "FP32", "tensor(double)": "FP64"}
_MAX_DETAILS_IN_MESSAGE: Final = 5


def error_body(err: ServingError) -> dict[str, str]:
    """The protocol's error shape: one line, the code first, the first field-level details folded in."""
    parts = [f"{err.code}: {err.message}"]
    shown = err.details[:_MAX_DETAILS_IN_MESSAGE]
    if shown:
        parts.append(
            "; ".join(
                (f"row {d.row} " if d.row is not None else "") + f"{d.field}: {d.message}" for d in shown
            )
        )
    if len(err.details) > len(shown) or err.truncated:
        parts.append("(more not shown)")
    return {"error": " - ".join(parts)}


def server_metadata() -> dict[str, Any]:
    # No extension is claimed: binary data is read on input only, and nothing else is implemented.
    return {"name": SERVER_NAME, "version": __version__, "extensions": []}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]  # -1 for the batch dimension

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def input_specs(manifest: Manifest) -> list[TensorSpec]:
    """The V2 inputs: the manifest's model inputs, named and shaped as in the graph."""
    return [
        TensorSpec(i.name, DATATYPE_OF[i.dtype], [-1, len(i.features)] if i.rank == 2 else [-1])
        for i in manifest.inputs
    ]


def output_specs(manifest: Manifest, graph_outputs: Sequence[Any] = ()) -> list[TensorSpec]:
    """The V2 outputs, in the manifest's vocabulary (see the module docstring)."""
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        specs = [TensorSpec(out.label_tensor or "label", "BYTES", [-1])]
        if out.probability_tensor is not None:
            specs.append(TensorSpec(out.probability_tensor, "FP32", [-1, len(out.labels)]))
        return specs
    node = next((o for o in graph_outputs if o.name == out.value_tensor), None)
    datatype = _ORT_VALUE_DATATYPE.get(node.type, "FP32") if node is not None else "FP32"
    rank = len(node.shape or [1]) if node is not None else 1
    return [TensorSpec(out.value_tensor, datatype, [-1, 1] if rank == 2 else [-1])]


def model_metadata(manifest: Manifest, graph_outputs: Sequence[Any] = ()) -> dict[str, Any]:
    """The model metadata V2 serves (GET /v2/models/<name>) for a manifest and its graph's outputs."""
    return _metadata(manifest, input_specs(manifest), output_specs(manifest, graph_outputs))


def _metadata(
    manifest: Manifest, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec]
) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "versions": [manifest.version],
        "platform": PLATFORM,
        "inputs": [i.to_dict() for i in inputs],
        "outputs": [o.to_dict() for o in outputs],
    }


@dataclass(frozen=True, slots=True)
class _Input:
    model_input: ModelInput
    spec: TensorSpec
    features: tuple[Feature, ...]


class V2Model:
    """The served model as the protocol sees it; built once per loaded `Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service
        manifest: Manifest = service.manifest
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        by_name = {f.name: f for f in manifest.features}
        self._inputs = {
            spec.name: _Input(model_input, spec, tuple(by_name[n] for n in model_input.features))
            for model_input, spec in zip(manifest.inputs, input_specs(manifest), strict=True)
        }
        self._outputs = {s.name: s for s in output_specs(manifest, service.runtime.session.get_outputs())}

    # -- addressing ------------------------------------------------------------------------

    def check(self, model_name: str, model_version: str | None = None) -> None:
        """404 unless the path names this model (and, when given, this version)."""
        if model_name != self.name:
            raise not_found(f"Request for unknown model: '{model_name}' is not found")
        if model_version is not None and model_version != self.version:
            raise not_found(
                f"Request for unknown model: '{model_name}' version {model_version} is not found "
                f"(this deployment serves version {self.version})"
            )

    def metadata(self) -> dict[str, Any]:
        return _metadata(self.manifest, [i.spec for i in self._inputs.values()], self._outputs.values())

    def ready(self) -> dict[str, Any]:
        return {"name": self.name, "ready": True}

    # -- inference -------------------------------------------------------------------------

    def infer(
        self,
        raw: bytes,
        header_length: str | None,
        *,
        request_id: str | None = None,
        observer: Observer | None = None,
    ) -> dict[str, Any]:
        """Decode, answer through the data plane, encode: one inference request end to end."""
        request, client_id, wanted = self.decode(raw, header_length)
        inference = self.service.dataplane.infer(request, request_id=request_id, observer=observer)
        return self.encode(inference, client_id, wanted)

    def decode(self, raw: bytes, header_length: str | None) -> tuple[Decoded, str | None, list[str]]:
        """The request as feature columns, its `id`, and the outputs it asks for."""
        request, binary = split_body(raw, header_length)
        if not isinstance(request.get("parameters", {}), dict):
            raise malformed("'parameters' must be an object")
        request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise malformed("'id' must be a string")
        wanted = self._requested_outputs(request.get("outputs", []))
        columns = self._decode_inputs(request.get("inputs"), binary)
        return Decoded(protocol="v2", columns=columns), request_id, wanted

    def encode(self, inference: Inference, request_id: str | None, wanted: list[str]) -> dict[str, Any]:
        response: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if request_id is not None:
            response["id"] = request_id
        ref = self.service.model_info_ref()  # traceable like /predict: which bytes, which Lambda version
        response["parameters"] = {
            "model_sha256": ref["sha256"],
            "function_version": ref["function_version"],
            # Row i's inference id (for POST /feedback) is "<inference_id_prefix>-<i>".
            "inference_id_prefix": inference.request_id,
        }
        response["outputs"] = self._encode_outputs(inference, wanted)
        return response

    def _requested_outputs(self, outputs: object) -> list[str]:
        if outputs == []:  # absent, or "[]" (which asks for nothing): read as "not specified"
            return list(self._outputs)
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise malformed("'outputs' must be an array of objects with a 'name'")
        names: list[str] = []
        for output in outputs:
            name = output.get("name")
            if not isinstance(name, str):
                raise malformed("each requested output needs a string 'name'")
            if not isinstance(output.get("parameters", {}), dict):
                raise malformed(f"requested output '{name}': 'parameters' must be an object")
            if name not in self._outputs:
                raise malformed(
                    f"unexpected inference output '{name}' for model '{self.name}'; "
                    f"outputs are: {', '.join(self._outputs)}"
                )
            if name not in names:
                names.append(name)
        return names

    def _decode_inputs(self, inputs: object, binary: bytes) -> dict[str, list[Any]]:
        if not isinstance(inputs, list) or not inputs:
            raise malformed("'inputs' must be a non-empty array of tensors")
        columns: dict[str, list[Any]] = {}
        seen: set[str] = set()
        rows: int | None = None
        offset = 0
        for tensor in inputs:
            if not isinstance(tensor, dict):
                raise malformed("each input must be an object with name, shape, datatype and data")
            name = tensor.get("name")
            if not isinstance(name, str):
                raise malformed("each input needs a string 'name'")
            expected = self._inputs.get(name)
            if expected is None:
                raise malformed(
                    f"unexpected inference input '{name}' for model '{self.name}'; "
                    f"inputs are: {', '.join(self._inputs)}"
                )
            if name in seen:
                raise malformed(f"input '{name}' is given more than once")
            seen.add(name)
            n = self._check_header(tensor, expected.spec)
            if rows is not None and n != rows:
                raise malformed(
                    f"input '{name}' has {n} rows but earlier inputs have {rows}: shapes must agree"
                )
            rows = n
            values, offset = tensor_values(tensor, expected.spec.datatype, binary, offset)
            width = len(expected.features)
            if len(values) != n * width:
                shape = tensor["shape"]
                raise malformed(
                    f"input '{name}' has {len(values)} elements but its shape {shape} needs {n * width}"
                )
            for j, feature in enumerate(expected.features):
                column = values[j::width] if width > 1 else values
                if expected.spec.datatype == "FP32":
                    column = snap_to_bounds(column, _bounds(feature))
                columns[feature.name] = column
        missing = [name for name in self._inputs if name not in seen]
        if missing:
            raise malformed(
                f"expected {len(self._inputs)} inputs but got {len(seen)} for model '{self.name}'; "
                f"missing: {', '.join(missing)}"
            )
        if offset != len(binary):
            raise malformed(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
        return columns

    def _check_header(self, tensor: dict[str, Any], spec: TensorSpec) -> int:
        """Datatype and shape against the model; returns the number of rows N."""
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise malformed(f"input '{spec.name}': datatype must be one of {', '.join(sorted(DATATYPES))}")
        if datatype != spec.datatype:
            raise malformed(
                f"inference input '{spec.name}' data-type is '{datatype}', "
                f"but model '{self.name}' expects '{spec.datatype}'"
            )
        shape = dimensions(tensor.get("shape"))
        width = spec.shape[1] if len(spec.shape) == 2 else 1
        accepted = [[-1, width]] + ([[-1]] if width == 1 else [])
        if (
            not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
            or len(shape) not in (1, 2)
            or (len(shape) == 2 and shape[1] != width)
            or (len(shape) == 1 and width != 1)
        ):
            shown = " or ".join(json.dumps(s).replace("-1", "N") for s in accepted)
            raise malformed(
                f"unexpected shape for input '{spec.name}' for model '{self.name}': "
                f"expected {shown}, got {json.dumps(shape)}"
            )
        rows: int = shape[0]
        limit = self.service.validator.max_rows
        if rows > limit:
            raise too_large("too_many_rows", f"{rows} rows sent; at most {limit} per request")
        return rows

    def _encode_outputs(self, inference: Inference, wanted: list[str]) -> list[dict[str, Any]]:
        out = self.manifest.output
        prediction = inference.prediction
        rows = inference.rows
        data: dict[str, list[Any]] = {}
        if isinstance(out, ClassificationOutput):
            assert prediction.labels is not None
            data[out.label_tensor or "label"] = prediction.labels
            if out.probability_tensor and prediction.probabilities is not None:
                data[out.probability_tensor] = _as(prediction.probabilities, "FP32")
        else:
            assert prediction.values is not None
            data[out.value_tensor] = _as(prediction.values, self._outputs[out.value_tensor].datatype)
        encoded = []
        for name in wanted:
            spec = self._outputs[name]
            shape = [rows if d == -1 else d for d in spec.shape]
            encoded.append({"name": name, "datatype": spec.datatype, "shape": shape, "data": data[name]})
        return encoded


def _bounds(feature: Feature) -> tuple[float, ...]:
    return tuple(b for b in (feature.minimum, feature.maximum) if b is not None)


def _as(values: Any, datatype: str) -> list[Any]:
    dtype = np.float64 if datatype == "FP64" else np.float32
    result: list[Any] = np.asarray(values, dtype=dtype).reshape(-1).tolist()
    return result


# -- one protocol view per loaded service --------------------------------------------------

_model: V2Model | None = None


def v2_model(service: Service) -> V2Model:
    global _model  # noqa: PLW0603 - cached with the per-execution-environment service
    if _model is None or _model.service is not service:
        _model = V2Model(service)
    return _model


__all__ = [
    "DATATYPES",
    "DATATYPE_OF",
    "PLATFORM",
    "TensorSpec",
    "V2Model",
    "error_body",
    "input_specs",
    "model_metadata",
    "output_specs",
    "server_metadata",
    "v2_model",
]
