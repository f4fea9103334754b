"""Present the resolution sweep: a layers x sizes table of saturation, the tail per size and the border beside it,
and the same numbers as one line per size (matplotlib, optional: imported lazily by render.plot)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.render.rf import border_note, size_label
from satcli.render.serialize import json_ready
from satcli.render.text import DottedName, Fit, format_percent
from satcli.rf.borders import Borders, SizeResult

MARKS = "t: in the tail · b: past the receptive-field border (r_min > size)"


def sweep_json(results: Sequence[SizeResult]) -> str:
    """One JSON record per size: the checkpoint's record plus input_size and the layers past the border."""
    lines = []
    for item in results:
        record = {"input_size": list(item.size), **item.result.to_dict()}
        record["rf_border"] = None if item.border is None else list(item.border)
        lines.append(json.dumps(json_ready(record), allow_nan=False, ensure_ascii=False, default=str))
    return "\n".join(lines) + "\n"


def sweep_table(model: str, results: Sequence[SizeResult], found: Borders) -> RenderableType:
    """Layers down, sizes across: saturation with t (tail) and b (past the border); the tail per size below."""
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("layer")
    for item in results:
        table.add_column(size_label(item.size), justify="right", no_wrap=True)
    for name in sweep_layers(results):
        cells = []
        for item in results:
            score = next((layer for layer in item.result.layers if layer.name == name), None)
            marks = ("t" if name in item.result.verdict.tail else " ") + ("b" if name in (item.border or ()) else " ")
            value = format_percent(score.saturation) if score is not None else "-"
            cells.append(f"{value} {marks}")
        table.add_row(DottedName(name), *cells)
    lines: list[RenderableType] = [Text(f"{model}: saturation by input size", style="bold"), Fit(table), Text(MARKS)]
    for item in results:
        tail = item.result.verdict.tail
        lines.append(Text(f"at {size_label(item.size)}: tail {', '.join(tail) if tail else '(none)'}"))
        if found.report is not None:
            note = border_note(found.report, item.size, tail)
            if note:
                lines.append(Text(f"  {note}", style="dim"))
    if found.problem:
        lines.append(Text(f"note: {found.problem}", style="yellow"))
    return Group(*lines)


def sweep_layers(results: Sequence[SizeResult]) -> list[str]:
    """Every layer scored at some size, in forward order (the first size's order, later ones' extras after)."""
    return list(dict.fromkeys(layer.name for item in results for layer in item.result.layers))


def plot_sweep(model: str, results: Sequence[SizeResult], output: Path) -> Path:
    """Write sweep_figure to `output`; the format follows its suffix."""
    from satcli.render.plot import save_figure

    return save_figure(sweep_figure(model, results), Path(output))


def sweep_figure(model: str, results: Sequence[SizeResult]) -> Any:
    """Saturation (%) against layer, one line per input size; rings on the tail, crosses past the border."""
    from satcli.render.plot import _percent, matplotlib_classes

    figure_class, canvas_class = matplotlib_classes()
    names = sweep_layers(results)
    fig = figure_class(figsize=(max(6.0, 0.55 * len(names) + 2.5), 4.5), layout="constrained")
    canvas_class(fig)
    ax = fig.add_subplot()
    for item in results:
        values = {layer.name: layer.saturation for layer in item.result.layers}
        y = [_percent(values.get(name)) for name in names]
        (line,) = ax.plot(range(len(names)), y, marker=".", lw=1.4, label=size_label(item.size), zorder=3)
        colour = line.get_color()
        tail = [i for i, name in enumerate(names) if name in item.result.verdict.tail]
        ax.scatter(tail, [y[i] for i in tail], s=110, facecolors="none", edgecolors=colour, lw=1.5, zorder=4)
        past = [i for i, name in enumerate(names) if name in (item.border or ())]
        ax.scatter(past, [y[i] for i in past], s=60, marker="x", color=colour, lw=1.5, zorder=4)
    # Marker keys for the legend, drawn outside the data so they add no Line2D to the axes.
    ax.scatter([], [], s=110, facecolors="none", edgecolors="0.3", lw=1.5, label="in the tail")
    ax.scatter([], [], s=60, marker="x", color="0.3", lw=1.5, label="past the border (r_min > size)")
    long = len(names) > 6 or max(map(len, names), default=0) > 8
    ax.set_xticks(range(len(names)), names, rotation=45 if long else 0, ha="right" if long else "center", fontsize=8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(0, 105)
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel("saturation (%)")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(title="input size", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{Path(model).name}: saturation by input size", fontsize=10)
    return fig
