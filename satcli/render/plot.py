"""Saturation plots from a store: one checkpoint as bars per layer, several as a layers x checkpoints heatmap.

The numbers are re-scored from the store with satcli.store.rescore, so a plot shows exactly what
`satcli report` prints at the same thresholds. matplotlib is optional (``pip install -e '.[plot]'`` in a checkout) and
imported only here, lazily; figures are drawn on the Agg canvas, never through pyplot's global state.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from satcli.core.results import CheckpointResult
from satcli.core.verdict import Verdict
from satcli.errors import SatcliError
from satcli.render.output import replace_file
from satcli.render.text import between_share, format_percent
from satcli.render.trajectory import always_output, checkpoint_labels, short_verdict, trajectory_layers

MISSING_MATPLOTLIB = "plotting needs matplotlib: pip install -e '.[plot]' in the satcli checkout"
DPI = 120
BAR = "#4C72B0"
BETWEEN = "#7B3294"
TAIL = "#DD8452"
OUTPUT = "#9A9A9A"
AVERAGE = "#222222"
UNDER_LINE = "#C44E52"
# Keyed by render.trajectory.short_verdict; an inconclusive verdict is grey (no rule decided it).
VERDICT_COLOURS = {
    "balanced": "#55A868",
    "over": TAIL,
    "under": UNDER_LINE,
    "under+over": UNDER_LINE,
    "inconcl.": OUTPUT,
}
# Cell values are written into the heatmap up to this many cells; beyond, the colours speak alone.
MAX_ANNOTATED_CELLS = 600
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}


def matplotlib_classes() -> tuple[Any, Any]:
    """matplotlib's Figure class and Agg canvas, or a one-line SatcliError when matplotlib is missing."""
    try:
        figure: ModuleType = importlib.import_module("matplotlib.figure")
        agg: ModuleType = importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError:
        raise SatcliError(MISSING_MATPLOTLIB) from None
    return figure.Figure, agg.FigureCanvasAgg


def plot_results(results: Sequence[CheckpointResult], output: Path, source: str | None = None) -> Path:
    """Write bars (one checkpoint) or a heatmap (several) to `output`; the format follows its suffix.

    The bar chart is titled by the checkpoint's short name, the heatmap by `source` (e.g. the store's name).
    """
    if not results:
        raise SatcliError("nothing to plot: no finished checkpoint was selected")
    return save_figure(results_figure(results, source), Path(output))


def results_figure(results: Sequence[CheckpointResult], source: str | None = None) -> Any:
    """Bars of one checkpoint or the heatmap of several, on an Agg canvas (see plot_results)."""
    figure_class, canvas_class = matplotlib_classes()
    if len(results) == 1:
        fig = _bars(figure_class, results[0], checkpoint_labels([results[0].model])[0])
    else:
        fig = _heatmap(figure_class, results, source)
    canvas_class(fig)
    return fig


def check_image_path(output: Path, supported: Mapping[str, str] | None = None) -> None:
    """Refuse an image path a figure could not be written to (unknown type, missing folder); commands call it
    before any work. `supported`: the figure's file types (default: those of a new figure)."""
    if supported is None:
        figure_class, canvas_class = matplotlib_classes()
        supported = canvas_class(figure_class()).get_supported_filetypes()
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in supported:
        raise SatcliError(f"cannot write {output}: unknown image type {suffix!r}; use one of {', '.join(supported)}")
    if not output.parent.is_dir():
        raise SatcliError(f"cannot write {output}: directory {output.parent} does not exist")


def save_figure(fig: Any, output: Path) -> Path:
    """Save through a temp file beside `output` and rename, so a failed save leaves no half-written image."""
    check_image_path(output, fig.canvas.get_supported_filetypes())
    suffix = output.suffix.lower().lstrip(".")
    return replace_file(output, lambda temp: fig.savefig(temp, format=suffix, dpi=DPI))


def _percent(x: float | None) -> float:
    return math.nan if x is None or not math.isfinite(x) else 100.0 * x


def _share(x: float) -> str:
    """A threshold as a percentage without float noise: 0.2 -> "20%", 0.125 -> "12.5%"."""
    return f"{x * 100:.10g}%"


def _subtitle(verdict: Verdict) -> str:
    t = verdict.thresholds
    tail = f"tail {len(verdict.tail)} layer{'s' if len(verdict.tail) != 1 else ''}"
    return f"average {format_percent(verdict.average)} · {tail} · delta {t.delta:g} · max tail {t.max_tail}"


def _bars(figure_class: Any, result: CheckpointResult, label: str) -> Any:
    """Saturation per layer in forward order: tail shaded, output layer grey, average and thresholds as lines."""
    verdict = result.verdict
    t = verdict.thresholds
    names = [layer.name for layer in result.layers]
    values = [_percent(layer.saturation) for layer in result.layers]
    n = len(names)
    fig = figure_class(figsize=(max(6.0, 0.55 * n + 2.5), 4.8), layout="constrained")
    ax = fig.add_subplot()
    tail_at = [i for i, name in enumerate(names) if name in verdict.tail]
    if tail_at:
        ax.axvspan(
            min(tail_at) - 0.5,
            max(tail_at) + 0.5,
            color=TAIL,
            alpha=0.15,
            lw=0,
            label=f"tail ({len(tail_at)} layer{'s' if len(tail_at) != 1 else ''})",
        )
    colours = [OUTPUT if name == verdict.output_layer else TAIL if name in verdict.tail else BAR for name in names]
    heights = [0.0 if math.isnan(v) else v for v in values]
    bars = ax.bar(range(n), heights, color=colours, width=0.7, zorder=2)
    if verdict.output_layer in names:
        bars[names.index(verdict.output_layer)].set_hatch("//")
    for i, (value, layer) in enumerate(zip(values, result.layers, strict=True)):
        text = "n/a" if math.isnan(value) else "dead" if "dead" in layer.flags else f"{value:.0f}%"
        ax.text(
            i,
            (0 if math.isnan(value) else value) + 1.5,
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            zorder=4,
            bbox=LABEL_BOX,
        )
    between = [_percent(between_share(layer)) for layer in result.layers]
    with_classes = any(not math.isnan(v) for v in between)
    if with_classes:
        ax.plot(range(n), between, color=BETWEEN, marker="o", lw=1.2, zorder=5, label="between-class share (classes)")
    if verdict.average is not None:
        ax.axhline(
            100 * verdict.average, color=AVERAGE, lw=1.4, zorder=3, label=f"average {format_percent(verdict.average)}"
        )
    ax.axhline(
        100 * t.tail_threshold, color=TAIL, lw=1.2, ls="--", zorder=3, label=f"tail < {_share(t.tail_threshold)}"
    )
    ax.axhline(
        100 * t.under_threshold,
        color=UNDER_LINE,
        lw=1.2,
        ls=":",
        zorder=3,
        label=f"under >= {_share(t.under_threshold)}",
    )
    ax.set_xticks(range(n), names, rotation=45 if n > 6 or max(map(len, names), default=0) > 8 else 0, ha="right")
    if n <= 6 and max(map(len, names), default=0) <= 8:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("center")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 110)
    ax.set_ylabel("saturation, between-class share (%)" if with_classes else "saturation (%)")
    ax.set_xlabel("layer (forward order; hatched: output layer, not averaged)")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    colour = VERDICT_COLOURS[short_verdict(verdict)]
    fig.suptitle(f"{label}: {verdict.label}", color=colour, fontweight="bold")
    ax.set_title(_subtitle(verdict), fontsize=9)
    return fig


# Characters of an 8 pt tick label that fit under one heatmap column.
TICK_CHARS = 8


def _heatmap(figure_class: Any, results: Sequence[CheckpointResult], source: str | None) -> Any:
    """Average saturation per checkpoint above a layers x checkpoints heatmap; tail cells outlined."""
    layers = trajectory_layers(results)
    labels = checkpoint_labels([r.model for r in results])
    cols, rows = len(results), len(layers)
    grid = [[math.nan] * cols for _ in range(rows)]
    for c, result in enumerate(results):
        for layer in result.layers:
            grid[layers.index(layer.name)][c] = _percent(layer.saturation)
    width = max(6.5, 0.6 * cols + 0.09 * max(map(len, layers)) + 3.0)
    height = max(4.5, 0.32 * rows + 3.2)
    fig = figure_class(figsize=(width, height), layout="constrained")
    top, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, max(2.5, rows / 4)])
    averages = [_percent(r.verdict.average) for r in results]
    top.plot(range(cols), averages, color=AVERAGE, lw=1.2, zorder=2)
    for c, result in enumerate(results):
        top.scatter(c, averages[c], color=VERDICT_COLOURS[short_verdict(result.verdict)], s=30, zorder=3)
    under = results[0].verdict.thresholds.under_threshold
    top.axhline(100 * under, color=UNDER_LINE, lw=1, ls=":", label=f"under >= {_share(under)}")
    top.set_ylabel("average (%)")
    top.set_ylim(0, max(100.0, *(a for a in averages if not math.isnan(a))))
    top.grid(axis="y", alpha=0.3)
    top.legend(loc="upper right", fontsize=8, frameon=False)
    colormap = _colormap()
    image = ax.imshow(grid, cmap=colormap, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    annotate = rows * cols <= MAX_ANNOTATED_CELLS
    for c, result in enumerate(results):
        for first, last in _runs(sorted(layers.index(name) for name in result.verdict.tail)):
            ax.add_patch(_rectangle((c - 0.5, first - 0.5), last - first + 1))
        for r in range(rows):
            value = grid[r][c]
            if annotate and not math.isnan(value):
                ink = "white" if value < 55 else "black"
                ax.text(c, r, f"{value:.0f}", ha="center", va="center", fontsize=7, color=ink)
    names = [f"{name} (output)" if always_output(name, results) else name for name in layers]
    ax.set_yticks(range(rows), names, fontsize=8)
    ticks = [f"{label}\n{short_verdict(r.verdict)}" for label, r in zip(labels, results, strict=True)]
    # A column is ~0.6 in wide (see `width`): about 8 characters at 8 pt. Longer labels stand upright, so their
    # boxes stay one line-height wide and never run into the next column's.
    upright = cols > 8 or max(len(line) for tick in ticks for line in tick.splitlines()) > TICK_CHARS
    ax.set_xticks(range(cols), ticks, rotation=90 if upright else 0, ha="center", fontsize=8)
    for tick, result in zip(ax.get_xticklabels(), results, strict=True):
        tick.set_color(VERDICT_COLOURS[short_verdict(result.verdict)])
    ax.set_ylabel("layer (forward order)")
    bar = fig.colorbar(image, ax=[top, ax], shrink=0.8, pad=0.02)
    bar.set_label("saturation (%)")
    thresholds = results[0].verdict.thresholds
    title = "saturation by layer and checkpoint"
    fig.suptitle(f"{title} · {source}" if source else title, fontweight="bold")
    top.set_title(
        f"outlined: tail (< {_share(thresholds.tail_threshold)} at the end) · delta {thresholds.delta:g}", fontsize=9
    )
    return fig


def _colormap() -> Any:
    colormaps = importlib.import_module("matplotlib").colormaps
    colormap = colormaps["viridis"].copy()
    colormap.set_bad("#E6E6E6")
    return colormap


def _rectangle(corner: tuple[float, float], height: int) -> Any:
    patches = importlib.import_module("matplotlib.patches")
    return patches.Rectangle(corner, 1, height, fill=False, edgecolor=TAIL, lw=2.0)


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted indices as (first, last) runs of consecutive values: [1, 2, 3, 6] -> [(1, 3), (6, 6)]."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs
