"""Shared formatting: percentages, plurals, saturation bars and styles used by every renderer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, LayerScore
from satcli.core.verdict import BALANCED, OVER, UNDER, Verdict

BAR_CELLS = 20


FULL_CELL = "█"


EMPTY_CELL = "░"


# "100.0%" is the widest percentage, so every saturation cell lines up on the right.
PERCENT_CELLS = 6


# Below this many bar cells a bar says nothing; the cell then shows the percentage alone.
MIN_BAR_CELLS = 5


MARK_TAIL = "tail"


MARK_OUTPUT = "(output)"


NOT_AVAILABLE = "n/a"


FLAG_STYLES: dict[str, str] = {FLAG_DEAD: "red", FLAG_NONFINITE: "bold red"}


VERDICT_STYLES: dict[str, str] = {BALANCED: "bold green", OVER: "bold yellow", UNDER: "bold red"}


def format_percent(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("52.3%"), or "n/a" when missing or not finite."""
    if x is None or not math.isfinite(x):
        return NOT_AVAILABLE
    return f"{x * 100:.1f}%"


def threshold_percent(x: float) -> str:
    """A threshold as a percentage without float noise: 0.2 -> "20%", 0.125 -> "12.5%"."""
    return f"{x * 100:.10g}%"


def between_share(layer: LayerScore) -> float | None:
    """tr Sigma_B / tr Sigma_T of a layer (the share of its variance that separates the classes), when class
    spectra were computed."""
    share = layer.extras.get("classes", {}).get("between_share")
    return share if isinstance(share, float) else None


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class SaturationBar:
    """A fixed-width text bar plus percentage; gives up bar cells, never the percentage, when squeezed."""

    def __init__(self, saturation: float | None, cells: int = BAR_CELLS) -> None:
        self.saturation = saturation
        self.cells = cells

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(PERCENT_CELLS, self.cells + 1 + PERCENT_CELLS)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cells = min(self.cells, options.max_width - 1 - PERCENT_CELLS)
        percent = format_percent(self.saturation).rjust(PERCENT_CELLS)
        if cells < MIN_BAR_CELLS:
            yield Text(percent, no_wrap=True, overflow="crop")
            return
        text = Text(no_wrap=True, overflow="crop")
        s = self.saturation
        if s is None or not math.isfinite(s):
            text.append(" " * cells)
        else:
            filled = min(cells, max(0, math.floor(s * cells + 0.5)))
            text.append(FULL_CELL * filled, style="cyan")
            text.append(EMPTY_CELL * (cells - filled), style="dim")
        text.append(" " + percent)
        yield text


def verdict_style(verdict: Verdict) -> str:
    if verdict.inconclusive is not None:
        return "bold magenta"
    if verdict.underparameterized:
        return VERDICT_STYLES[UNDER]
    if verdict.overparameterized:
        return VERDICT_STYLES[OVER]
    return VERDICT_STYLES[BALANCED]


# Wide enough for any table satcli prints; only a measuring bound, nothing is padded to it.
_UNBOUNDED = 10_000


def natural_width(console: Console, renderable: RenderableType) -> int:
    """Cells the renderable takes when nothing limits its width (table columns unwrapped)."""
    return Measurement.get(console, console.options.update_width(_UNBOUNDED), renderable).maximum


def least_width(console: Console, renderable: RenderableType) -> int:
    """Cells the renderable needs at the least: its numbers whole and its names wrapped only at dots."""
    return Measurement.get(console, console.options.update_width(_UNBOUNDED), renderable).minimum


@contextlib.contextmanager
def fitted(console: Console, width: int, least: int = 0) -> Iterator[Console]:
    """Widen a console that asks for it (`fit_content`: off a terminal with no COLUMNS) to `width` cells, and any
    console to `least` cells (a table that cannot fit the terminal without cutting a number or a name).

    A CI log has no width of its own; Rich's 80-column fallback would fold layer names mid-word there.
    """
    saved = console.width
    if getattr(console, "fit_content", False) and width > saved:
        console.width = width
    if least > console.width:
        console.width = least
    try:
        yield console
    finally:
        console.width = saved


def column_blocks(fixed: int, widths: Sequence[int], total: int, gap: int = 0) -> list[range]:
    """Consecutive ranges of columns (each `gap` + its width wide) that fit in `total` cells next to `fixed`
    ones, at least one column per block: a wide table split into tables that fit the terminal."""
    blocks: list[range] = []
    start, used = 0, fixed
    for i, width in enumerate(widths):
        if i > start and used + gap + width > total:
            blocks.append(range(start, i))
            start, used = i, fixed
        used += gap + width
    if widths:
        blocks.append(range(start, len(widths)))
    return blocks


def print_fitted(console: Console, renderable: RenderableType) -> None:
    """Print at the console's width, or wider when the renderable cannot fit without cutting."""
    with fitted(console, 0, least_width(console, renderable)):
        console.print(renderable)


def _dot_pieces(name: str, camel: bool = False) -> list[int]:
    """Offsets where a name may break: after each dot and each space (and, for `camel`, before each capital
    that follows a small letter: "Multihead|Attention")."""
    breaks = {i + 1 for i, char in enumerate(name[:-1]) if char in ". "}
    if camel:
        breaks |= {i for i in range(1, len(name)) if name[i].isupper() and name[i - 1].islower()}
    return sorted(breaks)


def _dot_lines(text: Text, width: int, camel: bool = False) -> list[Text]:
    """The text in lines of at most `width` cells, broken only after dots or spaces (a longer piece stays whole)."""
    lines: list[Text] = []
    for piece in text.divide(_dot_pieces(text.plain, camel)):
        if lines and cell_len(lines[-1].plain) + cell_len(piece.plain.rstrip()) <= width:
            lines[-1].append_text(piece)
        else:
            lines.append(piece.copy())
    for line in lines:
        line.rstrip()
    return lines


def wrap_at_dots(name: str, width: int) -> str:
    """A module path broken after dots into lines of at most `width` (a part longer than that stays whole)."""
    return "\n".join(line.plain for line in _dot_lines(Text(name), width))


class DottedName:
    """A layer name for a table cell: it wraps only after a dot (or a space), never mid-word, never with "…".

    Its narrowest width is its longest dotted piece ("encoder_layer_0."), so a table sized by `Fit` never cuts it.
    A `camel` name (a module type) may also break between words: "Multihead" / "Attention".
    """

    def __init__(self, name: str | Text, style: str = "", camel: bool = False) -> None:
        self.text = Text(name, style=style) if isinstance(name, str) else name
        self.camel = camel

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        pieces = [p.plain.rstrip() for p in self.text.divide(_dot_pieces(self.text.plain, self.camel))]
        return Measurement(max(map(cell_len, pieces), default=0), cell_len(self.text.plain))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        joined = Text("\n").join(_dot_lines(self.text, options.max_width, self.camel))
        joined.no_wrap, joined.overflow = True, "ignore"
        yield joined


def dotted(names: Iterable[str]) -> list[DottedName]:
    return [DottedName(name) for name in names]


class Fit:
    """A table sized here rather than by Rich, whose last resort cuts every column evenly (numbers and names).

    Columns with no_wrap (numbers) keep their full width; the columns in `first` (saturation bars) give up their
    cells first, then the other wrappable ones shrink, widest first, down to their longest word or dotted piece.
    When even that does not fit, one cell is left between columns instead of the table's padding. A table
    that still does not fit asks for more (its minimum measure), and is printed wider, never cut.
    """

    def __init__(self, table: Table, first: Sequence[int] = ()) -> None:
        self.table = table
        self.first = tuple(first)
        self.fixed = [column.width for column in table.columns]
        self.padding = table.padding

    def _ranges(self, console: Console, options: ConsoleOptions) -> list[Measurement]:
        """Each column's least and largest width with its padding: the table's own, or one cell between columns
        when that is what lets it fit `options.max_width`."""
        self.table.padding = self.padding
        ranges = self._column_ranges(console, options)
        if sum(r.minimum for r in ranges) + self.table._extra_width > options.max_width:
            self.table.padding = _one_cell_gaps(self.table)
            ranges = self._column_ranges(console, options)
        return ranges

    def _column_ranges(self, console: Console, options: ConsoleOptions) -> list[Measurement]:
        table, unbounded = self.table, options.update_width(_UNBOUNDED)
        for column, width in zip(table.columns, self.fixed, strict=True):
            column.width = width
        ranges = [table._measure_column(console, unbounded, column) for column in table.columns]
        return [
            Measurement(r.maximum, r.maximum) if column.no_wrap else r
            for r, column in zip(ranges, table.columns, strict=True)
        ]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        """From the least width with one cell between columns to the largest with the table's own padding."""
        extra = self.table._extra_width
        least = sum(r.minimum for r in self._ranges(console, options.update_width(0))) + extra
        return Measurement(least, sum(r.maximum for r in self._ranges(console, options)) + extra)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.table
        ranges = self._ranges(console, options)
        widths = fit_widths(
            [r.minimum for r in ranges], [r.maximum for r in ranges], options.max_width - table._extra_width, self.first
        )
        for index, (column, width) in enumerate(zip(table.columns, widths, strict=True)):
            column.width = width - table._get_padding_width(index)
        yield table


def _one_cell_gaps(table: Table) -> tuple[int, int, int, int]:
    """Padding that leaves one cell between columns: a box's column separator alone, or one cell on the right."""
    top, _, bottom, _ = table.padding
    return (top, 0, bottom, 0) if table.box else (top, 1, bottom, 0)


def fit_widths(least: Sequence[int], most: Sequence[int], total: int, first: Sequence[int] = ()) -> list[int]:
    """Column widths from their largest that sum to at most `total`: the `first` columns shrink first, then the
    widest of the others, one cell at a time, none below its least (so the sum may stay above `total`)."""
    widths = list(most)
    excess = sum(widths) - total
    for i in first:
        cut = max(0, min(excess, widths[i] - least[i]))
        widths[i] -= cut
        excess -= cut
    while excess > 0:
        shrinkable = [i for i in range(len(widths)) if widths[i] > least[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths
