"""The model runtime: load model.onnx once, verify it against the manifest, run onnxruntime.

A model directory holds `model.onnx`, `manifest.json` and `golden.json`. Loading is all or
nothing: the bytes are hashed and compared with the manifest's sha256 *before* a session is
built, and the session's inputs must be exactly the manifest's features, so a half-loaded or
tampered model never serves a request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import ClassificationOutput, Manifest, load_manifest

_ORT_TYPES = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "string": "tensor(string)",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Prediction:
    """Raw model outputs for N rows, already shaped per the manifest's output kind."""

    # classification: labels (N,) of str and probabilities (N, C) or None; regression: values (N,)
    labels: list[str] | None
    probabilities: npt.NDArray[np.float32] | None
    values: npt.NDArray[np.float64] | None


class ModelRuntime:
    """One loaded model: its manifest and an onnxruntime session. Immutable after load."""

    def __init__(self, manifest: Manifest, session: ort.InferenceSession, model_dir: Path) -> None:
        self.manifest = manifest
        self.session = session
        self.model_dir = model_dir
        out = manifest.output
        if isinstance(out, ClassificationOutput):
            self._output_names = [out.label_tensor] + (
                [out.probability_tensor] if out.probability_tensor else []
            )
        else:
            self._output_names = [out.value_tensor]

    @classmethod
    def load(cls, model_dir: Path, *, intra_op_threads: int = 1) -> ModelRuntime:
        try:
            manifest = load_manifest(model_dir)
        except FileNotFoundError as exc:
            raise ModelLoadError(f"no manifest.json in {model_dir}") from exc
        except ValueError as exc:  # ManifestError, or JSON that does not parse
            raise ModelLoadError(f"manifest.json in {model_dir} is invalid: {exc}") from exc
        model_path = model_dir / manifest.model_file
        try:
            model_bytes = model_path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read {model_path}: {exc.strerror or exc}") from exc
        actual = hashlib.sha256(model_bytes).hexdigest()
        if actual != manifest.sha256:
            raise ModelLoadError(
                f"sha256 of {model_path} is {actual}, manifest {manifest.name} {manifest.version} "
                f"expects {manifest.sha256}: refusing to serve a model that is not the one described"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
            raise ModelLoadError(f"onnxruntime cannot load {model_path}: {exc}") from exc
        _check_signature(manifest, session)
        return cls(manifest, session, model_dir)

    def run(self, tensors: dict[str, npt.NDArray[Any]]) -> Prediction:
        outputs = self.session.run(self._output_names, tensors)
        out = self.manifest.output
        if isinstance(out, ClassificationOutput):
            labels = [str(x) for x in np.asarray(outputs[0]).reshape(-1).tolist()]
            probs = np.asarray(outputs[1], dtype=np.float32) if len(outputs) > 1 else None
            return Prediction(labels=labels, probabilities=probs, values=None)
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        return Prediction(labels=None, probabilities=None, values=values)


def _check_signature(manifest: Manifest, session: ort.InferenceSession) -> None:
    inputs = {i.name: i.type for i in session.get_inputs()}
    expected = {f.tensor_name: _ORT_TYPES[f.dtype] for f in manifest.features}
    if inputs != expected:
        raise ModelLoadError(f"model inputs {inputs} do not match the manifest's features {expected}")
    outputs = {o.name for o in session.get_outputs()}
    out = manifest.output
    wanted = (
        {out.label_tensor, *([out.probability_tensor] if out.probability_tensor else [])}
        if isinstance(out, ClassificationOutput)
        else {out.value_tensor}
    )
    if not wanted <= outputs:
        raise ModelLoadError(
            f"model outputs {sorted(outputs)} lack {sorted(wanted - outputs)} named in the manifest"
        )
