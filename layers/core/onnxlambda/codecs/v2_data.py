"""A V2 request's bytes as tensor elements (the structure only; the values go to the data plane).

The body is a JSON header, optionally followed by the binary tensor data extension's bytes
(Inference-Header-Content-Length); each tensor's elements come from `data` (flat or nested by
row) or from its `binary_data_size` bytes, little-endian, BYTES length-prefixed, NaN in a float
tensor read as missing. FP32 elements at a range bound in float32 become the bound.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from onnxlambda.contract.errors import malformed

# Little-endian element layouts of the binary tensor data extension (BYTES is length-prefixed).
_BINARY_DTYPE: Final[dict[str, str]] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def dimensions(shape: object) -> object:
    """A shape with integral numbers as ints: JSON Schema's "integer" admits 2.0, so does this."""
    if isinstance(shape, list) and all(
        type(d) is float and d.is_integer() for d in shape if type(d) is not int
    ):
        return [int(d) if type(d) is float else d for d in shape]
    return shape


def split_body(raw: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header and, with the binary data extension, the bytes that follow it."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise malformed("Inference-Header-Content-Length must be an integer") from None
        if not 0 < size <= len(raw):
            raise malformed(f"Inference-Header-Content-Length {size} does not fit a body of {len(raw)} bytes")
        raw, binary = raw[:size], raw[size:]
    if not raw.strip():
        raise malformed("request body is empty; expected a JSON inference request")
    try:
        request = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise malformed("request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise malformed('request body must be a JSON object {"inputs": [...]}')
    return request, binary


def tensor_values(tensor: dict[str, Any], datatype: str, binary: bytes, offset: int) -> tuple[list[Any], int]:
    """The tensor's elements in row-major order, from `data` or from the binary section."""
    parameters = tensor.get("parameters", {})
    name = tensor["name"]
    if not isinstance(parameters, dict):
        raise malformed(f"input '{name}': 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise malformed(f"input '{name}': binary_data_size does not fit the binary data sent")
        chunk = binary[offset : offset + size]
        values, offset = decode_binary(name, datatype, chunk), offset + size
    else:
        if "data" not in tensor:
            raise malformed(f"input '{name}' has no 'data' (nor binary_data_size)")
        data = tensor["data"]
        if not isinstance(data, list):
            raise malformed(f"input '{name}': 'data' must be an array")
        values = list(flatten(data, name))
    return values, offset


def snap_to_bounds(values: list[Any], bounds: tuple[float, ...]) -> list[Any]:
    """FP32 elements at a range bound *in float32* become the bound (found by the tritonclient test).

    Clients hold float32: 25.7 arrives as 25.700000762939453 (JSON) or its 4 bytes, and the
    Validator, which checks ranges in float64 as for /predict, would find it above a maximum of
    25.7. The model sees float32(value), so the range is checked on that: rounding is monotonic,
    hence float32(v) == float32(bound) is the only case where the float64 and float32 checks
    disagree, and there the value is the bound. Anything else is left for the Validator.
    """
    if not bounds or not values:
        return values
    if not set(map(type, values)) <= {float, int, type(None)}:
        return [_snap_one(v, bounds) for v in values]
    try:
        column = np.array(values, dtype=np.float64)  # None becomes NaN, which equals no bound
    except OverflowError:  # an int beyond float64 (found by hypothesis): the Validator says so
        return [_snap_one(v, bounds) for v in values]
    with np.errstate(over="ignore"):
        single = column.astype(np.float32)
    hits = [(single == np.float32(b), b) for b in bounds]
    if not any(hit.any() for hit, _ in hits):
        return values  # the common case: nothing to change
    snapped = list(values)
    for hit, bound in hits:
        for i in np.flatnonzero(hit).tolist():
            snapped[i] = bound
    return snapped


def _snap_one(value: object, bounds: tuple[float, ...]) -> object:
    if type(value) is not float and type(value) is not int:
        return value  # null, bool, str...: the Validator reports them
    try:
        with np.errstate(over="ignore"):
            single = np.float32(value)
    except OverflowError:
        return value
    return next((b for b in bounds if single == np.float32(b)), value)


def flatten(data: list[Any], name: str, depth: int = 0) -> Iterable[Any]:
    # A tensor of rank <= 2 may be sent flat or nested row-major; deeper nesting is an error.
    for item in data:
        if isinstance(item, list):
            if depth >= 1:
                raise malformed(f"input '{name}': 'data' is nested deeper than the tensor's shape")
            yield from flatten(item, name, depth + 1)
        else:
            yield item


def decode_binary(name: str, datatype: str, chunk: bytes) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        pos = 0
        while pos < len(chunk):
            if pos + 4 > len(chunk):
                raise malformed(f"input '{name}': truncated BYTES element length")
            (length,) = struct.unpack_from("<I", chunk, pos)
            pos += 4
            if pos + length > len(chunk):
                raise malformed(f"input '{name}': BYTES element overruns its binary data")
            try:
                values.append(chunk[pos : pos + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise malformed(f"input '{name}': BYTES element is not UTF-8") from None
            pos += length
        return values
    dtype = np.dtype(_BINARY_DTYPE[datatype])
    if len(chunk) % dtype.itemsize:
        raise malformed(f"input '{name}': {len(chunk)} bytes is not a whole number of {datatype}")
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype.startswith("FP"):
        # NaN in a float tensor is how binary clients say "missing": the Validator decides.
        return [None if math.isnan(v) else v for v in array.tolist()]
    result: list[Any] = array.tolist()
    return result


__all__ = ["decode_binary", "dimensions", "flatten", "snap_to_bounds", "split_body", "tensor_values"]
