"""The one rule for numbers, in both batch formats and on the API.

A numeric feature's value is a JSON number (RFC 8259: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`,
ASCII digits only), read by one parser, `onnxlambda.codecs.fastjson`, so every path turns the same
text into the same value:

- `/predict`, V2 JSON and JSON Lines: the document is JSON. A value that is not a JSON number (the
  string "37.5", true) is `wrong_type`; text that is not JSON at all (an unquoted 1_000) makes the
  request malformed (400) or the line `malformed_json`.
- CSV: a numeric cell's text must be a JSON number, optionally surrounded by JSON whitespace
  (space, tab, CR, LF), and is parsed by that same JSON parser. An empty cell, or one of nothing
  but that whitespace, is null (CSV has no other way to say it). Any other text stays text and the
  validator reports it as `wrong_type`: `1_000`, Arabic-Indic digits (U+0660-U+0669), full-width
  digits (U+FF10-U+FF19), a no-break space around a number, `+1`, `.5`, `5.`, `01`, `0x1f`, `1,5`,
  `nan`, `inf`, `true`, `null`: most of which Python's float() or a locale would read as numbers.
- NaN, Infinity and -Infinity (exactly so spelled): Python's JSON parser accepts these three
  non-standard tokens, so the API does, and so does a CSV cell — only for the validator to reject
  them as `not_finite`, naming the value. A number beyond float64 (1e400) ends the same way. No
  non-finite value ever reaches the model, and none is ever silently turned into a null.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from onnxlambda.batch.files import BLANK_CHARS
from onnxlambda.codecs import fastjson

_NUMBER = re.compile(
    r"[ \t\r\n]*(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity)[ \t\r\n]*"
)
_PARSED = frozenset({int, float, type(None)})


def is_number(text: str) -> bool:
    """Whether `text` is a number under the rule above (surrounding JSON whitespace allowed)."""
    return _NUMBER.fullmatch(text) is not None


def parse_cell(cell: str) -> object:
    """One CSV cell of a numeric feature: an int or float, None when blank, else the text itself
    (left for the validator to report as wrong_type)."""
    if not cell.strip(BLANK_CHARS):
        return None
    if _NUMBER.fullmatch(cell) is None:
        return cell
    return fastjson.loads(cell)


def parse_column(cells: Sequence[str]) -> list[object]:
    """`parse_cell` over a column, normally in one call to the JSON parser: the cells joined
    into one JSON array, ~5x faster than a regex and a parse per cell.

    The shortcut is taken only when it cannot differ from `parse_cell`: the array must parse to
    exactly one int, float or null per cell. A cell with a comma changes the count; brackets,
    quotes, true/false give other types; a blank cell (", ,") does not parse; and a literal
    `null`, which must stay text, is ruled out before parsing. Anything else goes cell by cell.
    """
    n = len(cells)
    if not n:
        return []
    text = ",".join(cells)
    if "null" not in text:
        if "" in cells:  # empty cells are nulls
            text = ",".join([c or "null" for c in cells])
        try:
            values = fastjson.loads("[" + text + "]")
        except (ValueError, RecursionError):
            values = None
        if type(values) is list and len(values) == n and _PARSED.issuperset(map(type, values)):
            return values
    return [parse_cell(c) for c in cells]


__all__ = ["is_number", "parse_cell", "parse_column"]
