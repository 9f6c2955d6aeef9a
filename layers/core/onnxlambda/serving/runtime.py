"""The model runtime: load model.onnx once, verify it against the manifest, run onnxruntime.

A model directory holds `model.onnx`, `manifest.json` and `golden.json`. Loading is all or
nothing: the bytes are hashed and compared with the manifest's sha256 *before* a session is
built, and the graph's inputs and outputs must be exactly what the manifest describes
(onnxlambda.serving.tensors.check_signature), so a half-loaded, tampered or misdescribed model
never serves a request. The bytes are the user's file, unchanged: any adaptation (packing
columns, reading a ZipMap) happens around the session, driven by the manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnxruntime as ort

from onnxlambda.contract.errors import ModelLoadError
from onnxlambda.contract.manifest import Manifest, load_manifest
from onnxlambda.serving.tensors import Columns, InputLayout, OutputReader, Prediction, check_signature


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRuntime:
    """One loaded model: its manifest and an onnxruntime session. Immutable after load."""

    def __init__(self, manifest: Manifest, session: ort.InferenceSession, model_dir: Path) -> None:
        self.manifest = manifest
        self.session = session
        self.model_dir = model_dir
        self._layout = InputLayout(manifest.inputs)
        self._reader = OutputReader(manifest)

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
        check_signature(manifest, session.get_inputs(), session.get_outputs())
        return cls(manifest, session, model_dir)

    @property
    def output_names(self) -> list[str]:
        return list(self._reader.names)

    def feeds(self, columns: Columns, n: int) -> dict[str, object]:
        """The onnxruntime feed for `n` validated rows (1-D columns keyed by feature name)."""
        return dict(self._layout.feeds(columns, n))

    def run(self, columns: Columns, n: int) -> Prediction:
        outputs = self.session.run(self._reader.names, self._layout.feeds(columns, n))
        return self._reader.read(outputs, n)


__all__ = ["ModelRuntime", "Prediction", "sha256_file"]
