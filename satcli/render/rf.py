"""Present `satcli rf`: a table that fits 80 columns, a JSON-ready dict, and receptive field against depth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.core.receptive import Axes
from satcli.render.text import DottedName, Fit
from satcli.rf.report import RfReport, Size

WHOLE = "input"  # a field that covers the whole input (global pooling and after)


def size_label(size: Size) -> str:
    """(32, 32) -> '32', (32, 48) -> '32x48'."""
    return str(size[0]) if len(set(size)) == 1 else "x".join(map(str, size))


def _axes_json(values: Axes) -> list[int | str | None]:
    return [WHOLE if v is None else v for v in values]


def _axes_text(values: Axes) -> str:
    if all(v is None for v in values):
        return WHOLE
    if len(set(values)) == 1:
        return str(values[0])
    return "x".join(WHOLE if v is None else str(v) for v in values)


def rf_json(report: RfReport, model: str, fmt: str) -> dict[str, object]:
    """One record per tracked layer; a whole-input field is the string "input", its stride null."""
    labels = [size_label(s) for s in report.sizes]
    layers = [
        {
            "name": layer.name,
            "type": layer.type,
            "rf_min": _axes_json(layer.field.r_min),
            "rf_max": _axes_json(layer.field.r_max),
            "stride": list(layer.field.jump),
            "past_border": dict(zip(labels, layer.past_border, strict=True)),
        }
        for layer in report.layers
    ]
    border = {label: report.border_layers(size) for label, size in zip(labels, report.sizes, strict=True)}
    return {
        "model": model,
        "format": fmt,
        "graph": report.source,
        "input_sizes": [list(s) for s in report.sizes],
        "layers": layers,
        "past_border": border,
        "notes": list(report.notes),
    }


def rf_table(report: RfReport, model: str, fmt: str) -> RenderableType:
    """Layer, r_min, r_max, stride, then '>' per input size where the layer is past the border (r_min > s)."""
    head = Text(f"{model} ({fmt})\nlayer graph from {report.source}", style="bold")
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("layer")
    for column in ("r_min", "r_max", "stride"):
        table.add_column(column, justify="right", no_wrap=True)
    labels = [size_label(s) for s in report.sizes]
    for label in labels:
        table.add_column(f"@{label}", justify="center", no_wrap=True)
    for layer in report.layers:
        flags = [Text("past", style="magenta") if past else Text("-", style="dim") for past in layer.past_border]
        table.add_row(
            DottedName(layer.name),
            _axes_text(layer.field.r_min),
            _axes_text(layer.field.r_max),
            _axes_text(layer.field.jump) if not layer.field.whole else "-",
            *flags,
        )
    lines = [head, Fit(table), Text("")]
    for label, size in zip(labels, report.sizes, strict=True):
        past = report.border_layers(size)
        text = f"{len(past)} of {len(report.layers)} layers past the border (r_min > {label})"
        lines.append(Text(f"at {label}: {text}" if past else f"at {label}: no layer past the border"))
    lines.append(Text("Layers past the border cannot see new context: predicted unproductive.", style="dim"))
    lines.extend(Text(f"note: {note}", style="yellow") for note in report.notes)
    return Group(*lines)


def plot_rf(report: RfReport, output: Path) -> Path:
    """r_min and r_max of each layer against depth (log scale), the input sizes as horizontal lines."""
    from satcli.render.plot import save_figure
    from satcli.render.weight_plots import _figure

    fig = _figure(max(6.0, 0.3 * len(report.layers)), 4.5)
    ax = fig.add_subplot()
    depth = range(len(report.layers))
    finite = [v for layer in report.layers for v in (*layer.field.r_min, *layer.field.r_max) if v is not None]
    top = max([*finite, *(max(s) for s in report.sizes)], default=1) * 2
    square = all(len(set(layer.field.r_min)) == len(set(layer.field.r_max)) == 1 for layer in report.layers)
    for axis, style in zip(range(1 if square else len(report.sizes[0])), ("-", "--", ":"), strict=False):
        r_min = [_plotted(layer.field.r_min[axis], top) for layer in report.layers]
        r_max = [_plotted(layer.field.r_max[axis], top) for layer in report.layers]
        ax.plot(depth, r_min, style, marker="o", color="tab:blue", label=f"r_min (axis {axis})")
        ax.plot(depth, r_max, style, marker="^", color="tab:orange", label=f"r_max (axis {axis})")
    for size in report.sizes:
        ax.axhline(max(size), color="tab:red", linewidth=0.8)
        ax.annotate(f"input {size_label(size)}", (0, max(size)), color="tab:red", fontsize=8, va="bottom")
    ax.axhline(top, color="0.6", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(list(depth), [layer.name for layer in report.layers], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"receptive field (px); whole input drawn at {top}")
    ax.set_title("receptive field by depth (past the border: r_min > input)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, output)


def _plotted(value: int | None, top: int) -> int:
    return top if value is None else value


def border_note(report: RfReport, size: Size, tail: Sequence[str]) -> str | None:
    """'tail layers past the receptive-field border at S: a, b' for the analyze table, or None."""
    past = set(report.border_layers(size))
    both = [name for name in tail if name in past]
    if not tail:
        return None
    label = size_label(size)
    if not both:
        return f"no tail layer is past the receptive-field border at {label} (r_min > {label})"
    return f"{len(both)} of {len(tail)} tail layers past the receptive-field border at {label}: {', '.join(both)}"
