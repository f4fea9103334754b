"""What a running command tells its user on stderr: the progress bar, memory-plan and warning lines."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from satcli.cli.console import with_flags
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from satcli.core.results import CheckpointResult


def budget_bytes(text: str | None) -> int | None:
    """--memory-budget as bytes (None: the default share of the available memory)."""
    from satcli.engine.plan import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise SatcliError(f"--memory-budget: {exc}") from None


def tell_plan(err: Console, quiet: bool, plan: Any) -> None:
    """One stderr line when a checkpoint needs more than one pass over the data, saying why."""
    if plan.passes > 1 and not quiet:
        err.print(f"[cyan]memory:[/] {escape(plan.describe())}", soft_wrap=True, highlight=False)


class _Advance:
    """The per-batch callback of one checkpoint's bar; `eigen` relabels the bar during the eigen step."""

    def __init__(self, progress: Progress, task: TaskID, name: str) -> None:
        self._progress, self._task, self._name = progress, task, name
        self._phase = f"{name}: "

    def __call__(self, count: int) -> None:
        self._progress.advance(self._task, count)

    def eigen(self, done: int, total: int) -> None:
        self._progress.update(self._task, description=f"{self._phase}eigenvalues {done}/{total} layers")

    def phase(self, text: str) -> None:
        """Name the pass running now (a run within a memory budget makes several)."""
        self._phase = f"{self._name}: {text}: "
        self._progress.update(self._task, description=self._phase.rstrip(": "))


@contextlib.contextmanager
def progress_bar(err: Console, quiet: bool, path: Path, total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr for one checkpoint; yields the per-batch callback.

    Off when stderr is not a terminal: there it could only leave a blank line per checkpoint in the log.
    """
    from satcli.render.progress import make_progress

    progress = make_progress(err)
    progress.disable = quiet or not err.is_terminal
    with progress:
        task = progress.add_task(path.name, total=total)
        yield _Advance(progress, task, path.name)


def warn_notes(result: CheckpointResult, err: Console) -> None:
    """Each warning about a finished checkpoint (inputs left out, ...) as one stderr line."""
    from satcli.render.notes import result_notes

    for note in result_notes(result):
        err.print(f"[yellow]warning:[/] {escape(with_flags(note))}", soft_wrap=True, highlight=False)
