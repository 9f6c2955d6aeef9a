"""The JSON Lines reader: one JSON object per line, parsed like an API request body."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from onnxlambda.batch.files import BLANK_CHARS, FileError
from onnxlambda.batch.rows import WHOLE_FILE, Chunk, LineCounts, RejectedRow, Span
from onnxlambda.codecs import fastjson
from onnxlambda.contract.errors import FieldError
from onnxlambda.contract.manifest import Manifest


class JsonLinesReader:
    """One JSON object per line, parsed like an API request body (onnxlambda.codecs.fastjson);
    blank lines are skipped and not numbered."""

    def __init__(
        self, manifest: Manifest, *, chunk_rows: int, id_column: str | None, span: Span = WHOLE_FILE
    ) -> None:
        self._span = span
        self._manifest = manifest
        self._chunk_rows = chunk_rows
        # A feature that happens to be called like the id column stays a feature.
        self._id_column = id_column if id_column not in manifest.feature_names else None
        self._features = frozenset(manifest.feature_names)
        self._ignore_extra = manifest.extra_fields == "ignore"
        self.counts = LineCounts()

    def chunks(self, lines: Iterable[str]) -> Iterator[Chunk]:
        numbers: list[int] = []
        lines_of: list[int] = []
        objects: list[dict[str, Any]] = []
        originals: list[dict[str, Any]] = []
        carry: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        span = self._span
        row = span.rows_before
        read = 0  # lines of this part read
        for line_no, line in enumerate(lines, start=span.first_line):
            if not span.owns(line_no):
                break
            read += 1
            if not line.strip(BLANK_CHARS):
                self.counts.blank += 1
                continue
            row += 1
            try:
                obj = fastjson.loads(line)
            except (ValueError, RecursionError) as exc:
                msg = f"not a JSON value: {exc}" if isinstance(exc, ValueError) else "nested too deeply"
                error = FieldError(row, "(row)", "malformed_json", msg)
                rejected.append(RejectedRow(row, [error], line.rstrip("\r\n"), line_no))
            else:
                if type(obj) is not dict:
                    message = f"expected an object, got {type(obj).__name__}"
                    error = FieldError(row, "(row)", "wrong_type", message)
                    rejected.append(RejectedRow(row, [error], obj, line_no))
                else:
                    numbers.append(row)
                    lines_of.append(line_no)
                    originals.append(obj)
                    kept: dict[str, Any] = {}
                    if self._id_column is not None and self._id_column in obj:
                        obj = dict(obj)
                        kept[self._id_column] = obj.pop(self._id_column)
                    if self._ignore_extra and not obj.keys() <= self._features:
                        kept.update((k, v) for k, v in obj.items() if k not in self._features)
                    carry.append(kept)
                    objects.append(obj)
            if len(objects) + len(rejected) >= self._chunk_rows:
                yield self._chunk(numbers, lines_of, objects, originals, carry, rejected)
                numbers, lines_of, objects, originals, carry, rejected = [], [], [], [], [], []
        self.counts.total = read
        if row == span.rows_before and span == WHOLE_FILE:
            raise FileError("empty", "the file has no content")
        if objects or rejected:
            yield self._chunk(numbers, lines_of, objects, originals, carry, rejected)

    @staticmethod
    def _chunk(  # noqa: PLR0917 - the parallel lists of one chunk
        numbers: list[int],
        lines_of: list[int],
        objects: list[dict[str, Any]],
        originals: list[dict[str, Any]],
        carry: list[dict[str, Any]],
        rejected: list[RejectedRow],
    ) -> Chunk:
        return Chunk(
            numbers=numbers,
            lines=lines_of,
            objects=objects,
            carry=carry if any(carry) else None,
            raw=lambda i: originals[i],
            rejected=rejected,
        )


__all__ = ["JsonLinesReader"]
