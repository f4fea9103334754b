"""The import path for user code: an architecture factory or a trusted pickle's classes import from the
folder satcli runs in (or a pyproject's folder), as under `python -m`. Standard library only, so the
CLI's configuration can use it at start-up."""

from __future__ import annotations

import os
import sys


def import_from(folder: str | None = None) -> None:
    """Put a folder (default: the current one) first on the import path, as `python -m` does, so code named
    by an architecture or a trusted pickle imports the same way whether satcli runs as `satcli` or
    `python -m satcli`."""
    folder = os.path.abspath(folder or os.getcwd())
    if folder not in sys.path:
        sys.path.insert(0, folder)
