"""Shared formatting: percentages, plurals, saturation bars and styles used by every renderer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
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


@contextlib.contextmanager
def fitted(console: Console, width: int) -> Iterator[Console]:
    """Widen a console that asks for it (`fit_content`: off a terminal with no COLUMNS) to `width` cells.

    A CI log has no width of its own; Rich's 80-column fallback would fold layer names mid-word there.
    """
    saved = console.width
    if getattr(console, "fit_content", False) and width > saved:
        console.width = width
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
