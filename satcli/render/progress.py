"""The progress bar on stderr: samples done, throughput, time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class SampleCountColumn(ProgressColumn):
    """Shows "completed/total samples", with "?" for an unknown total."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else str(int(task.total))
        return Text(f"{int(task.completed)}/{total} samples", style="progress.download")


class SamplesPerSecondColumn(ProgressColumn):
    """Average throughput since the start (completed / elapsed), steadier than Rich's windowed speed."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not elapsed or elapsed <= 0:
            return Text("? samples/s", style="progress.data.speed")
        rate = task.completed / elapsed
        shown = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
        return Text(f"{shown} samples/s", style="progress.data.speed")


def make_progress(console: Console) -> Progress:
    """A transient progress bar on the given console (meant to be stderr, so stdout stays clean)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        SampleCountColumn(),
        SamplesPerSecondColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
