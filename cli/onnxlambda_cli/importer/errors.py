"""The importer's one error: what is wrong with the user's artifacts and how to fix it, in one line."""

from __future__ import annotations


class ImportInputError(ValueError):
    """The artifacts cannot become a model directory; the message says what and how to fix it.

    The command prints it as one line and exits with status 2 (a usage error: nothing was written).
    """


__all__ = ["ImportInputError"]
