"""Column-wise validation of request rows against the manifest's features.

Rows arrive as JSON objects (`{"feature": value, ...}`). Checking them object by object in Python
would dominate a 1,000-row request, so every check here works on a whole column: one pass to
collect the column, a set of the value types seen, and numpy comparisons for finiteness and range.
The slow, row-by-row path runs only to *describe* errors once a column is known to be bad.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from onnxlambda.contract.errors import FieldError, ServingError, invalid, malformed, too_large
from onnxlambda.contract.manifest import Feature, Manifest

_NUMERIC_TYPES = frozenset({int, float})
_NP_DTYPES: dict[str, npt.DTypeLike] = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

Columns = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class ColumnHealth:
    """Per-feature counts for input-health metrics: how many values were null."""

    rows: int
    missing: dict[str, int]


@dataclass(frozen=True, slots=True)
class PartialBatch:
    """A chunk validated row by row: columns for the rows that passed, the problems of the rest."""

    good: npt.NDArray[np.intp]  # chunk indices of the rows that passed, ascending
    columns: Columns  # validated 1-D columns by feature name, only the good rows, in `good` order
    errors: dict[int, list[FieldError]]  # chunk index -> every problem of that row
    health: ColumnHealth  # nulls per feature over the whole chunk

    @property
    def rows(self) -> int:
        return int(self.good.size)


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """Validated 1-D columns keyed by feature name (the dtype the model wants: NaN or "" for a
    missing value), ready for the runtime's input layout, and input-health counts."""

    columns: Columns
    rows: int
    health: ColumnHealth


def json_type(value: object) -> str:  # noqa: PLR0911 - one return per JSON type
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Validator:
    """Built once per model; `validate(rows)` turns request rows into validated columns or a 4xx error."""

    def __init__(self, manifest: Manifest, *, max_rows: int, max_error_details: int = 100) -> None:
        self._manifest = manifest
        self._features = manifest.features
        self._keys = frozenset(manifest.feature_names)
        self._reject_extra = manifest.extra_fields == "reject"
        self._max_rows = max_rows
        self._max_details = max_error_details
        self._categories = {f.name: frozenset(f.categories or ()) for f in manifest.features}

    @property
    def max_rows(self) -> int:
        return self._max_rows

    def validate(self, rows: object) -> ValidatedBatch:
        """All or nothing (the API): columns for every row, or one 4xx listing every problem."""
        rows = self._check_envelope(rows)
        errors: list[FieldError] = []
        absent = self._check_keys(rows, errors)
        columns = {f.name: [row.get(f.name) for row in rows] for f in self._features}
        return self._all_or_nothing(columns, len(rows), errors, absent)

    def validate_table(self, columns: Mapping[str, Sequence[Any]], n: int) -> ValidatedBatch:
        """All or nothing, like `validate`, for data that is already columnar with every feature
        present (V2 tensors): no rows are built only to be taken apart again."""
        self._check_row_count(n)
        return self._all_or_nothing(columns, n, [], {})

    def _all_or_nothing(
        self,
        columns: Mapping[str, Sequence[Any]],
        n: int,
        errors: list[FieldError],
        absent: dict[str, set[int]],
    ) -> ValidatedBatch:
        checked, missing = self._check_columns(columns, n, errors, absent)
        if errors:
            errors.sort(key=lambda e: e.row if e.row is not None else -1)
            raise invalid(errors, self._max_details)
        return ValidatedBatch(checked, n, ColumnHealth(n, missing))

    def validate_partial(self, rows: Sequence[dict[str, Any]]) -> PartialBatch:
        """Row by row (batch files): columns for the rows that pass, every problem of the others.

        Rows must already be objects and the chunk bounded by the caller; there is no row limit.
        """
        rows = list(rows)
        errors: list[FieldError] = []
        absent = self._check_keys(rows, errors)
        columns = {f.name: [row.get(f.name) for row in rows] for f in self._features}
        checked, missing = self._check_columns(columns, len(rows), errors, absent)
        return _split(checked, len(rows), errors, missing)

    def validate_columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> PartialBatch:
        """Like `validate_partial` for data that is already columnar, every feature present
        (CSV chunks: the header was checked once for the whole file)."""
        errors: list[FieldError] = []
        checked, missing = self._check_columns(columns, n, errors, {})
        return _split(checked, n, errors, missing)

    def _check_columns(
        self,
        columns: Mapping[str, Sequence[Any]],
        n: int,
        errors: list[FieldError],
        absent: dict[str, set[int]],
    ) -> tuple[Columns, dict[str, int]]:
        checked: Columns = {}
        missing: dict[str, int] = {}
        for feature in self._features:
            # A row with a missing key was reported already and reads as null here, so the
            # other columns are still checked and the caller sees every problem at once.
            values = columns[feature.name]
            if len(values) != n:
                raise ValueError(f"column {feature.name!r} has {len(values)} values, expected {n}")
            column_errors: list[FieldError] = []
            if feature.is_categorical:
                tensor, nulls = self._string_column(feature, values, column_errors)
            else:
                tensor, nulls = self._numeric_column(feature, values, column_errors)
            skip = absent.get(feature.name)
            errors.extend(e for e in column_errors if not skip or e.row not in skip)
            checked[feature.name] = tensor
            missing[feature.name] = nulls
        return checked, missing

    # -- envelope and keys ------------------------------------------------------------------

    def _check_envelope(self, rows: object) -> list[dict[str, Any]]:
        if not isinstance(rows, list):
            raise malformed(
                f"'instances' must be an array of objects, got {json_type(rows)}",
                [FieldError(None, "instances", "wrong_type", "expected an array of row objects")],
            )
        self._check_row_count(len(rows))
        if not all(type(r) is dict for r in rows):
            bad = [
                FieldError(i, "instances", "wrong_type", f"row must be an object, got {json_type(r)}")
                for i, r in enumerate(rows)
                if type(r) is not dict
            ]
            raise invalid(bad, self._max_details)
        return rows

    def _check_row_count(self, n: int) -> None:
        if not n:
            raise invalid([FieldError(None, "instances", "empty", "at least one row is required")], 1)
        if n > self._max_rows:
            raise too_large("too_many_rows", f"{n} rows sent; at most {self._max_rows} per request")

    def _check_keys(self, rows: list[dict[str, Any]], errors: list[FieldError]) -> dict[str, set[int]]:
        """Report missing and extra keys; return, per feature, the rows that lack it."""
        keys = self._keys
        absent: dict[str, set[int]] = {}
        for i, row in enumerate(rows):
            if row.keys() == keys:  # the common case: one C-level set comparison
                continue
            present = row.keys()
            for name in self._manifest.feature_names:
                if name not in present:
                    absent.setdefault(name, set()).add(i)
                    errors.append(
                        FieldError(
                            i,
                            name,
                            "missing_feature",
                            f"feature {name!r} is required (send null if unknown and allowed)",
                        )
                    )
            if self._reject_extra:
                for name in sorted(str(k) for k in present - keys):
                    errors.append(
                        FieldError(i, name, "unknown_feature", f"{name!r} is not a feature of this model")
                    )
        return absent

    # -- columns ----------------------------------------------------------------------------

    def _null_mask(
        self, feature: Feature, values: Sequence[Any], errors: list[FieldError]
    ) -> npt.NDArray[np.bool_]:
        # map(operator.is_) runs in C: a generator expression here was the slowest line of a
        # batch chunk (one Python frame per value)
        mask = np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=len(values))
        if not feature.nullable:
            for i in np.flatnonzero(mask).tolist():
                errors.append(
                    FieldError(i, feature.name, "null_not_allowed", f"{feature.name!r} cannot be null")
                )
        return mask

    def _numeric_column(
        self, feature: Feature, values: Sequence[Any], errors: list[FieldError]
    ) -> tuple[npt.NDArray[Any], int]:
        n = len(values)
        types = set(map(type, values))
        has_null = type(None) in types
        nulls = self._null_mask(feature, values, errors) if has_null else np.zeros(n, dtype=bool)
        if not types <= _NUMERIC_TYPES | {type(None)}:
            # bool is a subclass of int but never a number here; strings are never parsed.
            for i, v in enumerate(values):
                if v is not None and type(v) not in _NUMERIC_TYPES:
                    errors.append(
                        FieldError(i, feature.name, "wrong_type", f"expected a number, got {json_type(v)}")
                    )
            values = [v if type(v) in _NUMERIC_TYPES else None for v in values]
            nulls = nulls | np.fromiter((v is None for v in values), dtype=bool, count=n)
        try:
            column = np.array(values, dtype=np.float64)  # None becomes NaN
        except OverflowError:  # an integer beyond float64's range
            for i, v in enumerate(values):
                if type(v) is int and not _fits_float(v):
                    errors.append(
                        FieldError(
                            i, feature.name, "out_of_range", f"{feature.name!r} is far outside any range"
                        )
                    )
            values = [v if type(v) is not int or _fits_float(v) else None for v in values]
            nulls = nulls | np.fromiter((v is None for v in values), dtype=bool, count=n)
            column = np.array(values, dtype=np.float64)
        finite = np.isfinite(column)
        not_finite = ~finite & ~nulls
        if not_finite.any():
            for i in np.flatnonzero(not_finite).tolist():
                errors.append(
                    FieldError(
                        i,
                        feature.name,
                        "not_finite",
                        f"{feature.name!r} must be a finite number, got {values[i]!r}",
                    )
                )
        self._check_range(feature, column, finite, errors)
        if feature.dtype == "int64":
            self._check_integral(feature, column, finite, errors)
            column = np.where(finite, column, 0)  # ints have no NaN; nulls are rejected for int features
        with np.errstate(over="ignore"):  # float32 overflow is detected and reported just below
            tensor = column.astype(_NP_DTYPES[feature.dtype])
        if feature.dtype == "float32":
            # Values beyond float32's range would silently become inf.
            overflow = finite & ~np.isfinite(tensor)
            for i in np.flatnonzero(overflow).tolist():
                errors.append(
                    FieldError(i, feature.name, "out_of_range", f"{values[i]!r} does not fit float32")
                )
        return tensor, int(nulls.sum())

    def _check_range(
        self,
        feature: Feature,
        column: npt.NDArray[np.float64],
        finite: npt.NDArray[np.bool_],
        errors: list[FieldError],
    ) -> None:
        lo, hi = feature.minimum, feature.maximum
        if lo is None and hi is None:
            return
        low = finite & (column < lo) if lo is not None else np.zeros_like(finite)
        high = finite & (column > hi) if hi is not None else np.zeros_like(finite)
        bad = low | high
        if bad.any():
            span = f"[{_fmt(lo)}, {_fmt(hi)}]"
            for i in np.flatnonzero(bad).tolist():
                errors.append(
                    FieldError(
                        i,
                        feature.name,
                        "out_of_range",
                        f"{feature.name!r}={_fmt(column[i])} is outside {span}",
                    )
                )

    @staticmethod
    def _check_integral(
        feature: Feature,
        column: npt.NDArray[np.float64],
        finite: npt.NDArray[np.bool_],
        errors: list[FieldError],
    ) -> None:
        bad = finite & ((column != np.round(column)) | (column < _INT64_MIN) | (column > _INT64_MAX))
        for i in np.flatnonzero(bad).tolist():
            errors.append(
                FieldError(i, feature.name, "wrong_type", f"expected an integer, got {_fmt(column[i])}")
            )

    def _string_column(
        self, feature: Feature, values: Sequence[Any], errors: list[FieldError]
    ) -> tuple[npt.NDArray[Any], int]:
        n = len(values)
        types = set(map(type, values))
        nulls = 0
        skip: npt.NDArray[np.bool_] | None = None  # nulls and wrong types: already reported
        if type(None) in types:
            skip = self._null_mask(feature, values, errors)
            nulls = int(skip.sum())
        if not types <= {str, type(None)}:
            wrong = np.fromiter((v is not None and type(v) is not str for v in values), dtype=bool, count=n)
            for i in np.flatnonzero(wrong).tolist():
                errors.append(
                    FieldError(
                        i, feature.name, "wrong_type", f"expected a string, got {json_type(values[i])}"
                    )
                )
            skip = wrong if skip is None else skip | wrong
        allowed = self._categories[feature.name]
        known = allowed
        if skip is not None:  # nulls (and rows refused anyway) reach the model as its missing token
            fill = feature.missing_string
            if fill not in values:  # then `fill` below stands only for values reported above: one
                known = allowed | {fill}  # C-level check instead of a Python loop over the column
            values = [fill if s else v for v, s in zip(values, skip.tolist(), strict=True)]
        if not known.issuperset(values):
            shown = ", ".join(sorted(allowed))
            for i, v in enumerate(values):
                if v not in allowed and (skip is None or not skip[i]):
                    errors.append(
                        FieldError(i, feature.name, "unknown_category", f"{v!r} is not one of: {shown}")
                    )
        return np.array(values, dtype=object), nulls


def _split(columns: Columns, n: int, errors: list[FieldError], missing: dict[str, int]) -> PartialBatch:
    by_row: dict[int, list[FieldError]] = {}
    for e in errors:
        by_row.setdefault(e.row if e.row is not None else -1, []).append(e)
    if -1 in by_row:  # only the envelope has row-less errors, and batch chunks have no envelope
        raise ValueError("row-less validation error in a partial batch")
    if not by_row:
        return PartialBatch(np.arange(n, dtype=np.intp), columns, {}, ColumnHealth(n, missing))
    bad = np.zeros(n, dtype=bool)
    bad[list(by_row)] = True
    good = np.flatnonzero(~bad)
    kept = {name: t[good] for name, t in columns.items()}
    return PartialBatch(good, kept, dict(sorted(by_row.items())), ColumnHealth(n, missing))


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


__all__ = [
    "ColumnHealth",
    "Columns",
    "PartialBatch",
    "ServingError",
    "ValidatedBatch",
    "Validator",
    "json_type",
]
