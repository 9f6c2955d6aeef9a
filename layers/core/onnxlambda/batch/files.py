"""The bytes of a batch file: its format from the key, bounded reads, UTF-8 decoding into lines.

Nothing here holds a whole file: `byte_chunks` reads an S3 body in pieces and `text_blocks` /
`text_lines` decode them incrementally into physical lines (cut at "\n" only, the unit every
count in a summary is made of). A file that cannot be read at all raises `FileError` (with a stable
code that lands in the failed summary).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Literal, Protocol

Format = Literal["csv", "jsonl"]
FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONTENT_TYPES: dict[Format, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
READ_BYTES = 1 << 20
MAX_LINE_CHARS = 16 << 20  # a "line" longer than this is not a table row: refuse, don't buffer it
# Leading bytes of formats that are certainly not text.
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PAR1": "parquet",
    b"\x89PNG": "png",
    b"%PDF": "pdf",
}


class FileError(Exception):
    """The file as a whole cannot be scored (nothing is written but an error report)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def detect_format(key: str) -> Format:
    lower = key.lower()
    for ext, fmt in FORMATS.items():
        if lower.endswith(ext):
            return fmt
    raise FileError(
        "unknown_format", f"{key!r} is not a supported format; use one of: {', '.join(sorted(FORMATS))}"
    )


class _Readable(Protocol):
    def read(self, amt: int | None = ..., /) -> bytes: ...


def byte_chunks(body: _Readable, size: int = READ_BYTES) -> Iterator[bytes]:
    """Read a file-like (an S3 StreamingBody) in bounded pieces."""
    while True:
        data = body.read(size)
        if not data:
            return
        yield data


def _sniffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass the bytes through, refusing well-known binary formats by their first bytes."""
    it = iter(chunks)
    head = b""
    for data in it:
        head += data
        if len(head) >= 8:
            break
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            raise FileError("corrupt", f"the file is {name} data, not text (upload it uncompressed)")
    if head:
        yield head
    yield from it


# What "blank" means, in both formats: a physical line holding nothing but JSON whitespace
# (space, tab, carriage return) before its "\n". Such a line is skipped, counted apart, and gets
# no row number. Any other character (a form feed, a no-break space, a lone quote) makes it a row.
BLANK_CHARS = " \t\r\n"


def is_blank(line: str) -> bool:
    """True for a blank physical line (see BLANK_CHARS)."""
    return not line.strip(BLANK_CHARS)


def _split_lines(text: str) -> list[str]:
    """`text` (ending with "\\n") cut after each "\\n", ends kept.

    str.splitlines is ~3x faster than splitting and re-appending "\\n", but it also cuts at
    "\\r", "\\x0b", "\\x1c", "\\u2028", ...: those must stay data, so it is used only when it
    made exactly one piece per "\\n"."""
    lines = text.splitlines(keepends=True)
    if len(lines) == text.count("\n"):
        return lines
    parts = text.split("\n")
    parts.pop()  # the empty piece after the final "\n"
    return [part + "\n" for part in parts]


def text_blocks(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """Decode UTF-8 (BOM allowed) incrementally; yield the complete lines of each piece read,
    split on "\\n" with their ends kept (the last line of the file may lack one).

    Only "\\n" splits: csv handles "\\r\\n" and quoted newlines itself, and other Unicode line
    breaks inside a field must stay data. Raises FileError for binary or non-UTF-8 content.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    offset = 0
    pending = ""
    for data in _sniffed(chunks):
        if b"\x00" in data:  # before decoding: binary data is "corrupt", not "wrong encoding"
            raise FileError("corrupt", "the file contains NUL bytes: binary data, not text")
        try:
            text = decoder.decode(data)
        except UnicodeDecodeError as exc:
            at = offset + exc.start
            raise FileError(
                "wrong_encoding",
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {at} cannot be decoded",
            ) from exc
        offset += len(data)
        if not text:
            continue
        pending += text
        cut = pending.rfind("\n") + 1
        if not cut:
            if len(pending) > MAX_LINE_CHARS:
                raise FileError("corrupt", f"a line longer than {MAX_LINE_CHARS} characters: not a table")
            continue
        complete, pending = pending[:cut], pending[cut:]
        yield _split_lines(complete)
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise FileError(
            "wrong_encoding", "not UTF-8 text: the file ends inside a multi-byte character"
        ) from exc
    pending += tail
    if pending:  # the last line, without a line end
        yield [pending]


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of `text_blocks`, one by one (C-level chaining: no Python frame per line)."""
    return chain.from_iterable(text_blocks(chunks))


__all__ = [
    "BLANK_CHARS",
    "CONTENT_TYPES",
    "FORMATS",
    "FileError",
    "Format",
    "byte_chunks",
    "detect_format",
    "is_blank",
    "text_blocks",
    "text_lines",
]
