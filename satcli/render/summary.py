"""The trajectory summary under `satcli report`'s tables: first and last average, the early flag, settling."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from satcli.core.trajectory import TrajectorySummary
from satcli.render.text import format_percent


def _percent(value: float | None) -> str:
    return "-" if value is None else format_percent(value).strip()


def summary_lines(summary: TrajectorySummary) -> list[tuple[str, str]]:
    """(label, text) rows of the summary, each rule printed with what it found."""
    rule, steps, averages = summary.rule, summary.steps, summary.averages
    seen = ", ".join(_percent(a) for a in averages[: summary.early_checked])
    if summary.early_underparameterized:
        flag = (
            f"underparameterized early: average saturation >= {_percent(summary.under_threshold)} in each of "
            f"the first {summary.early_checked} checkpoints ({seen})"
        )
    else:
        flag = f"none (average saturation in the first {summary.early_checked} checkpoints: {seen})"
    if summary.settled_step is None:
        settled = "not settled: no run of checkpoints up to the last where every layer moved less than the tolerance"
    else:
        settled = f"saturation settled at step {summary.settled_step} (an observation, not a stopping rule)"
    return [
        ("average", f"{_percent(averages[0])} at step {steps[0]} -> {_percent(averages[-1])} at step {steps[-1]}"),
        ("early flag", flag),
        ("settling", settled),
        (
            "rule",
            f"early: average >= under threshold in each of the first {rule.early_checkpoints} checkpoints; "
            f"settled at S: from S to the last checkpoint, every averaged layer's saturation moves less than "
            f"{rule.tolerance * 100:g} points between consecutive checkpoints, over at least {rule.window} moves",
        ),
    ]


def render_summary(title: str, summary: TrajectorySummary, console: Console) -> None:
    """Print the summary of one run as a two-column grid under a title line."""
    console.print(Text(f"trajectory {title} · {len(summary.steps)} checkpoints", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, text in summary_lines(summary):
        grid.add_row(label, Text(text))
    console.print(grid)
