"""The consoles commands print to: a closed pipe ends the run quietly, like any Unix tool."""

from __future__ import annotations

from typing import Any

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich would exit with code 1, the code of a failed check; the entry point handles it instead.
        raise BrokenPipeError


def stdout_console(**kwargs: Any) -> Console:
    """The console for results on stdout (no soft wrapping: tables keep their lines)."""
    return _Console(soft_wrap=False, **kwargs)


def stderr_console(**kwargs: Any) -> Console:
    """The console for progress and messages on stderr."""
    return _Console(stderr=True, **kwargs)
