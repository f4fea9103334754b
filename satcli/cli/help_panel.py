"""--help option panels laid out by satcli: option names, short flags and metavars whole, help wrapping beside them.

Typer's options table (typer.rich_utils._print_options_panel) leaves every column wrappable and gives its help
column (a rich Columns, which has no measure) no least width, so at 80 columns Rich's last resort cuts every
column evenly: "--trust-remote-co…", "<float32|float16". Here the panel's table is re-laid out, in the first
of four layouts that leaves the help column at least as wide as its longest word (and HELP_CELLS):
the columns as Typer has them; the negative name (--no-x) under the option name; the metavar too; the help
below the names, indented.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from rich.cells import cell_len
from rich.columns import Columns
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# Below this many cells a help column reads as a list of single words; the next layout is tried instead.
HELP_CELLS = 30


# Cells between two columns, as Typer's options table (padding (0, 1) on each side).
GAP = 2


# Indent of the help text in the layout with the help below the names.
HELP_INDENT = 4


@contextlib.contextmanager
def fitted_options_panels() -> Iterator[None]:
    """While Typer prints help, its options panels are laid out by OptionsLayout."""
    from typer import rich_utils

    original = rich_utils._print_options_panel

    def print_options_panel(*, console: Console, **kwargs: Any) -> None:
        original(console=_FittingConsole(console), **kwargs)

    rich_utils._print_options_panel = print_options_panel
    try:
        yield
    finally:
        rich_utils._print_options_panel = original


class _FittingConsole:
    """The console Typer prints an options panel to: the panel's table becomes an OptionsLayout."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def print(self, renderable: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(renderable, Panel) and isinstance(renderable.renderable, Table):
            layout = OptionsLayout.of(renderable.renderable)
            if layout is not None:
                renderable.renderable = layout
        self.console.print(renderable, *args, **kwargs)


class _Row:
    """One option of the panel, in the cells Typer made for it."""

    def __init__(self, cells: Sequence[RenderableType], required: RenderableType | None) -> None:
        long, short, negative_long, negative_short, metavar, help_ = cells
        self.required = required
        self.long, self.short, self.metavar, self.help = long, short, metavar, help_
        self.negative_long, self.negative_short = negative_long, negative_short


class OptionsLayout:
    """Typer's options table laid out so that no option name, short flag or metavar is ever cut."""

    def __init__(self, rows: list[_Row], required: bool) -> None:
        self.rows = rows
        self.required = required

    @classmethod
    def of(cls, table: Table) -> OptionsLayout | None:
        """The layout of Typer's table (required mark, long, short, negative long and short, metavar, help),
        or None for a table of another shape (a Typer that builds its panel otherwise is left alone)."""
        columns = [list(column.cells) for column in table.columns]
        if len(columns) not in (6, 7):
            return None
        required = len(columns) == 7
        marks = columns.pop(0) if required else [None] * table.row_count
        return cls([_Row(cells, mark) for mark, *cells in zip(marks, *columns, strict=True)], required)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        help_least = max(HELP_CELLS, max((_longest_word(console, options, row.help) for row in self.rows), default=0))
        layouts = (self._typer_columns, self._stacked_negatives, self._stacked_names)
        for table in (layout(console, options) for layout in layouts):
            if _names_width(console, options, table) + GAP + help_least <= width:
                yield _with_help_width(table, width - _names_width(console, options, table) - GAP)
                return
        yield self._help_below(console, options)

    def _typer_columns(self, console: Console, options: ConsoleOptions) -> Table:
        """Typer's own columns, those that are empty in every row left out."""
        cells = [[r.required, r.long, r.short, r.negative_long, r.negative_short, r.metavar] for r in self.rows]
        return _grid(console, options, cells, [row.help for row in self.rows])

    def _stacked_negatives(self, console: Console, options: ConsoleOptions) -> Table:
        """Negative names under the option names (and short flags) rather than in columns of their own."""
        cells = [
            [r.required, _lines(r.long, r.negative_long), _lines(r.short, r.negative_short), r.metavar]
            for r in self.rows
        ]
        return _grid(console, options, cells, [row.help for row in self.rows])

    def _stacked_names(self, console: Console, options: ConsoleOptions) -> Table:
        """Negative name and metavar on lines of their own under the option name; short flags stacked likewise."""
        cells = [
            [r.required, _lines(r.long, r.negative_long, r.metavar), _lines(r.short, r.negative_short)]
            for r in self.rows
        ]
        return _grid(console, options, cells, [row.help for row in self.rows])

    def _help_below(self, console: Console, options: ConsoleOptions) -> Group:
        """Each option's names on one line, its help below them, indented: for terminals too narrow for both."""
        parts: list[RenderableType] = []
        for row in self.rows:
            names = [row.required, row.long, row.short, row.negative_long, row.negative_short, row.metavar]
            parts.append(Text(" ").join(_text(cell) for cell in names if _plain(cell)))
            parts.append(Padding(row.help, (0, 0, 0, HELP_INDENT)))
        return Group(*parts)


def _grid(console: Console, options: ConsoleOptions, cells: list[list[Any]], helps: list[RenderableType]) -> Table:
    """A grid of the non-empty name columns at their full width (never wrapped) and a help column."""
    kept = [i for i in range(len(cells[0])) if any(_plain(row[i]) for row in cells)]
    table = Table.grid(padding=(0, GAP // 2), pad_edge=False, collapse_padding=False)
    for i in kept:
        widest = max(Measurement.get(console, options, _text(row[i])).maximum for row in cells)
        table.add_column(width=widest, no_wrap=True)
    table.add_column()
    for row, help_ in zip(cells, helps, strict=True):
        table.add_row(*[_text(row[i]) for i in kept], help_)
    return table


def _names_width(console: Console, options: ConsoleOptions, table: Table) -> int:
    """Cells of a grid's name columns with the gaps between them."""
    names = table.columns[:-1]
    return sum(column.width or 0 for column in names) + GAP * (len(names) - 1)


def _with_help_width(table: Table, width: int) -> Table:
    table.columns[-1].width = width
    return table


def _longest_word(console: Console, options: ConsoleOptions, help_: RenderableType) -> int:
    """Cells of the longest word of an option's help: the help column must be at least this wide."""
    items = help_.renderables if isinstance(help_, Columns) else [help_]
    longest = 0
    for item in items:
        if isinstance(item, Text):
            longest = max([longest, *(cell_len(word) for word in item.plain.split())])
        else:
            longest = max(longest, Measurement.get(console, options, item).minimum)
    return longest


def _lines(*cells: Any) -> Text:
    """The non-empty cells, one a line."""
    return Text("\n").join(_text(cell) for cell in cells if _plain(cell))


def _text(cell: Any) -> Text:
    if isinstance(cell, Text):
        return cell
    return Text(str(cell or ""))


def _plain(cell: Any) -> str:
    return _text(cell).plain
