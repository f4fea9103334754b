"""The errors domain code raises. The CLI maps them to a one-line message and an exit code.

Messages describe the problem in the library's terms (they are read from the Python API too), never in
terms of command-line flags; the CLI adds flag hints where it knows them.
"""

from __future__ import annotations


class SatcliError(Exception):
    """A problem with the user's input (model, data, options, store) that ends the run cleanly."""


class ModelError(SatcliError):
    """A model file that cannot be loaded or does not fit the data."""


class DataError(SatcliError):
    """A data spec that cannot be opened or read."""


class StoreError(SatcliError):
    """A store that cannot be read or written."""


def one_line(exc: BaseException, limit: int = 300, *, last: bool = False) -> str:
    """An exception's message as one line: its first (or `last`) non-empty line, its type when empty,
    at most `limit` characters long."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = (lines[-1] if last else lines[0]) if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
