"""The consoles commands print to: a closed pipe ends the run quietly, like any Unix tool."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console


class _Console(Console):
    # Off a terminal with no COLUMNS (CI logs, files): renderers may widen the console to keep names whole.
    fit_content = False

    def on_broken_pipe(self) -> None:
        # Rich would exit with code 1, the code of a failed check; the entry point handles it instead.
        raise BrokenPipeError


def stdout_console(**kwargs: Any) -> Console:
    """The console for results on stdout (no soft wrapping: tables keep their lines).

    Off a terminal, tables take their natural width instead of Rich's 80 columns, unless COLUMNS is set.
    """
    console = _Console(soft_wrap=False, **kwargs)
    console.fit_content = not console.is_terminal and not os.environ.get("COLUMNS") and "width" not in kwargs
    return console


def stderr_console(**kwargs: Any) -> Console:
    """The console for progress and messages on stderr."""
    return _Console(stderr=True, **kwargs)
