"""One file's scoring state: validate a chunk, run the model, count drift, render the scored rows
and the errors file's lines (redacted), and the summary's drift section."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from onnxlambda import settings
from onnxlambda.batch.files import Format
from onnxlambda.batch.readers import Chunk, RejectedRow
from onnxlambda.batch.writer import MultipartWriter
from onnxlambda.codecs import fastjson
from onnxlambda.contract.manifest import ClassificationOutput, Manifest
from onnxlambda.contract.redaction import REDACTED, Redactor
from onnxlambda.monitoring.drift import BinnedCounts, min_count
from onnxlambda.serving.runtime import ModelRuntime, Prediction
from onnxlambda.serving.validation import PartialBatch, Validator


class Scorer:
    """Per-file state: counters, drift accumulators and the two output writers."""

    def __init__(
        self,
        runtime: ModelRuntime,
        validator: Validator,
        fmt: Format,
        id_column: str | None,
        redactor: Redactor | None = None,
    ) -> None:
        self.runtime = runtime
        self.redactor = redactor or Redactor()
        self.manifest = runtime.manifest
        self.validator = validator
        self.fmt = fmt
        self.id_column = id_column
        self.rows_read = 0
        self.rows_scored = 0
        self.rows_rejected = 0
        self.lines_scored = 0
        self.lines_rejected = 0
        self.rejected_by_code: dict[str, int] = {}
        baselines = self.manifest.baselines
        self.feature_drift = {
            f.name: BinnedCounts(baselines.features[f.name]) for f in self.manifest.features
        }
        self.output_drift = BinnedCounts(baselines.output)
        self._csv_header: list[str] | None = None

    # -- one chunk ----------------------------------------------------------------------------

    def score(self, chunk: Chunk, scored: MultipartWriter, errors: MultipartWriter) -> None:
        self.rows_read += chunk.size + len(chunk.rejected)
        rejected = list(chunk.rejected)
        self.lines_rejected += sum(r.span for r in rejected)
        if chunk.size:
            if chunk.columns is not None:
                partial = self.validator.validate_columns(chunk.columns, chunk.size)
            else:
                assert chunk.objects is not None
                partial = self.validator.validate_partial(chunk.objects)
            for i, errs in partial.errors.items():
                row = chunk.numbers[i]
                fixed = [replace(e, row=row) for e in errs]  # chunk index -> row number in the file
                rejected.append(RejectedRow(row, fixed, chunk.raw(i), chunk.lines[i], chunk.end_line(i)))
            bad_lines = chunk.lines_of(partial.errors)
            self.lines_rejected += bad_lines
            self.lines_scored += chunk.lines_of(range(chunk.size)) - bad_lines
            if partial.rows:
                prediction = self.runtime.run(partial.columns, partial.rows)
                self._count_drift(partial, prediction)
                scored.write(self._render(chunk, partial, prediction))
                self.rows_scored += partial.rows
        if rejected:
            rejected.sort(key=lambda r: r.row)
            errors.write(
                "".join(json.dumps(self._error_line(r), default=str) + "\n" for r in rejected).encode("utf-8")
            )
            self.rows_rejected += len(rejected)
            for r in rejected:
                for code in {e.code for e in r.errors}:
                    self.rejected_by_code[code] = self.rejected_by_code.get(code, 0) + 1

    def _error_line(self, rejected: RejectedRow) -> dict[str, Any]:
        """One errors.jsonl line, with the configured fields' values redacted."""
        redactor = self.redactor
        if not redactor:
            return rejected.to_dict()
        safe = replace(rejected, errors=[redactor.detail(e) for e in rejected.errors])
        line = safe.to_dict()
        raw = rejected.input
        if isinstance(raw, dict):
            line["input"] = redactor.row(raw)
        elif raw is not None:
            line["input"] = REDACTED  # cells or text not mapped to fields: any could be sensitive
        return line

    def _count_drift(self, partial: PartialBatch, prediction: Prediction) -> None:
        for f in self.manifest.features:
            self.feature_drift[f.name].add(partial.columns[f.name])
        if prediction.labels is not None:
            self.output_drift.add(prediction.labels)
        elif prediction.values is not None:
            self.output_drift.add(prediction.values)

    # -- output rows --------------------------------------------------------------------------

    def _prediction_columns(self, prediction: Prediction) -> tuple[list[str], list[list[Any]]]:
        """Column names and values (probabilities rounded to 6 decimals)."""
        out = self.manifest.output
        if isinstance(out, ClassificationOutput):
            assert prediction.labels is not None
            names, cols = ["label"], [list(prediction.labels)]
            if prediction.probabilities is not None:
                probs = np.round(prediction.probabilities.astype(np.float64), 6)
                names += [f"probability_{label}" for label in out.labels]
                cols += [probs[:, j].tolist() for j in range(probs.shape[1])]
            return names, cols
        assert prediction.values is not None
        return [out.name], [prediction.values.tolist()]

    def _render(self, chunk: Chunk, partial: PartialBatch, prediction: Prediction) -> bytes:
        good = partial.good.tolist()
        numbers = [chunk.numbers[i] for i in good] if partial.errors else list(chunk.numbers)
        carry = [chunk.carry[i] for i in good] if chunk.carry is not None else None
        if self.fmt == "csv":
            return self._render_csv(numbers, carry, prediction)
        names, pred_cols = self._prediction_columns(prediction)
        pred_rows = list(zip(*pred_cols, strict=True))
        lines = []
        for j, n in enumerate(numbers):
            obj: dict[str, Any] = {"row": n}
            if carry is not None:
                obj.update(carry[j])
            obj.update(self._prediction_object(names, pred_rows[j]))
            lines.append(fastjson.dumps(obj))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _prediction_object(self, names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
        out = self.manifest.output
        if isinstance(out, ClassificationOutput) and len(names) > 1:
            return {"label": values[0], "probabilities": dict(zip(out.labels, values[1:], strict=True))}
        return dict(zip(names, values, strict=True))

    def _prediction_text(self, prediction: Prediction) -> tuple[list[str], list[list[str]]]:
        """CSV header names and text columns of the prediction. The probabilities of a row come
        as one text cell group ("0.123456,0.000012,0.876532"), formatted in numpy: formatting
        each probability in Python was the largest cost of a chunk after parsing."""
        out = self.manifest.output
        if isinstance(out, ClassificationOutput):
            assert prediction.labels is not None
            labels = list(prediction.labels)
            # labels are few distinct strings: checked once each, quoted only if one must be
            quote = any(_csv_field(v) != v for v in set(labels))
            cols = [[_csv_field(v) for v in labels] if quote else labels]
            names = ["label"]
            if prediction.probabilities is not None:
                names += [f"probability_{label}" for label in out.labels]
                cols.append(_fixed6(prediction.probabilities))
            return names, cols
        assert prediction.values is not None
        return [out.name], [list(map(repr, prediction.values.tolist()))]

    def _render_csv(
        self, numbers: list[int], carry: list[dict[str, Any]] | None, prediction: Prediction
    ) -> bytes:
        """CSV lines joined column-wise; only carried values and labels may need quoting."""
        header = ""
        names, pred_cols = self._prediction_text(prediction)
        carry_names = list(carry[0]) if carry else []
        if self._csv_header is None:
            self._csv_header = ["row", *carry_names, *names]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(self._csv_header)
            header = buffer.getvalue()
        columns: list[list[str]] = [list(map(str, numbers))]
        if carry:
            columns += [[_csv_field(str(c.get(k, ""))) for c in carry] for k in carry_names]
        columns += pred_cols
        return (header + "\n".join(map(",".join, zip(*columns, strict=True))) + "\n").encode("utf-8")

    def finish_csv_header(self, carry_names: list[str], scored: MultipartWriter) -> None:
        """A CSV with no scored row still gets its header, so consumers can always parse it."""
        if self._csv_header is None:
            names, _ = self._prediction_text(_empty_prediction(self.manifest))
            self._csv_header = ["row", *carry_names, *names]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(self._csv_header)
            scored.write(buffer.getvalue().encode("utf-8"))

    def drift(self) -> dict[str, Any]:
        def one(counts: BinnedCounts) -> dict[str, Any]:
            stat = counts.stat()
            bins = len(counts.expected())
            # counts: this file's per-bin counts, so `onnxlambda_cli.drift_report --summary` can plot
            # them and the monitor's detectors can judge them (same statistics, onnxlambda.monitoring.drift).
            return {
                **stat.to_dict(),
                "bins": bins,
                "counts": counts.current(),
                "enough_data": stat.count >= min_count(bins),
            }

        return {
            "features": {name: one(c) for name, c in self.feature_drift.items()},
            "output": one(self.output_drift),
            "method": "PSI (natural log) and Jensen-Shannon distance (base 2) over the manifest's baseline "
            "bins, shares smoothed with 0.5 per bin (onnxlambda.monitoring.drift, as the monitor); "
            "counts per bin "
            "(numeric) or per category (new ones under __unseen__); enough_data = at least 20 values per bin",
        }


def _empty_prediction(manifest: Manifest) -> Prediction:
    out = manifest.output
    if isinstance(out, ClassificationOutput):
        probs = np.zeros((0, len(out.labels)), dtype=np.float32) if out.probability_tensor else None
        return Prediction(labels=[], probabilities=probs, values=None)
    return Prediction(labels=None, probabilities=None, values=np.zeros(0))


def _fixed6(probabilities: npt.NDArray[Any]) -> list[str]:
    """Per row, its probabilities with 6 decimals ("%.6f", the values of np.round(p, 6)) joined
    by commas. Digits are computed on the whole [N, C] array and the text of a row is made once,
    instead of one Python format call per probability."""
    k = np.rint(probabilities.astype(np.float64) * 1e6)
    n, c = k.shape
    if not n or not c or not (np.isfinite(k).all() and k.min() >= 0 and k.max() < 10_000_000):
        return [",".join(f"{v:.6f}" for v in row) for row in probabilities.astype(np.float64).tolist()]
    rest = k.astype(np.int64)
    text = np.empty((n, c, 9), dtype=np.uint8)  # "d.dddddd," per probability
    for pos in range(7, 1, -1):
        rest, digit = np.divmod(rest, 10)
        text[:, :, pos] = digit + 48
    text[:, :, 1] = ord(".")
    text[:, :, 0] = rest + 48
    text[:, :, 8] = ord(",")
    width = 9 * c - 1  # the row's last comma dropped
    cells = np.ascontiguousarray(text.reshape(n, 9 * c)[:, :width])
    strings: list[str] = cells.view(f"S{width}").ravel().astype(f"U{width}").tolist()
    return strings


def _csv_field(value: str) -> str:
    """Quote a CSV field the way the csv module's default dialect does when it must."""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def model_ref(manifest: Manifest) -> dict[str, str]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "sha256": manifest.sha256,
        "function_version": settings.get("AWS_LAMBDA_FUNCTION_VERSION"),
    }


__all__ = ["Scorer", "model_ref"]
