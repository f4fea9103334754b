"""The projection check's output: a layers x deltas table, its JSON, and a plot of accuracy (or output change).

Only formatting: every number comes from satcli.core.projection's report as computed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from satcli.core.projection import ProjectionReport, ProjectionResult
from satcli.render.plot import matplotlib_classes, save_figure
from satcli.render.text import NOT_AVAILABLE, DottedName, Fit, column_blocks, least_width, plural, print_fitted

# A variant is marked when its accuracy is more than this many points below the base (the paper's "no loss"
# reads as within half a point here), or, without labels, when its output changes by more than this share.
DROP_POINTS = 0.5
CHANGE_LIMIT = 0.1
ALL = "all"


def projection_json(report: ProjectionReport) -> str:
    """The report as one JSON object."""
    return json.dumps(report.to_dict(), allow_nan=False)


def render_projection(report: ProjectionReport, console: Console) -> None:
    """Header line, the layers x deltas table (split into blocks of deltas that fit the console) and a legend."""
    console.print(_header(report), soft_wrap=True, highlight=False)
    cells = {(r.scope, r.layer, r.delta): r for r in report.results}
    names = [DottedName(layer.name + (" (output)" if layer.output else "")) for layer in report.layers]
    fixed = max((least_width(console, name) for name in names), default=0) + 1
    labelled = report.base_accuracy is not None
    sub = f"{'k/d':>5}{'acc%':>7}{'pts':>6}{'Δout':>7}" if labelled else f"{'k/d':>5}{'Δout':>7}"
    needs = [max(len(sub), len(f"delta {delta:g}")) + 2 for delta in report.deltas]
    for i, block in enumerate(column_blocks(fixed, needs, console.width)):
        if i:
            console.print()
        print_fitted(console, Fit(_delta_table(report, cells, [report.deltas[j] for j in block], sub)))
    console.print(_legend(report), highlight=False, style="dim")


def _delta_table(report: ProjectionReport, cells: dict[Any, ProjectionResult], deltas: list[float], sub: str) -> Table:
    """Layers down, the given deltas across, and the all-layers row below."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    table.add_column("layer")
    for delta in deltas:
        table.add_column(f"delta {delta:g}\n{sub}", justify="right", no_wrap=True)
    for layer in report.layers:
        name = Text(layer.name)
        if layer.output:
            name.append(" (output)", style="dim")
        table.add_row(DottedName(name), *[_cell(report, cells[("layer", layer.name, d)], layer.width) for d in deltas])
    inner = [layer for layer in report.layers if not layer.output]
    if any(("all", None, d) in cells for d in deltas):
        table.add_section()
        label = Text(f"{ALL} ({plural(len(inner), 'layer')})", style="bold")
        width = sum(layer.width for layer in inner)
        table.add_row(label, *[_cell(report, cells[("all", None, d)], width) for d in deltas])
    return table


def _header(report: ProjectionReport) -> str:
    evaluated = "the same" if report.eval_data == report.fit_data else report.eval_data
    base = "n/a (no labels)" if report.base_accuracy is None else f"{100 * report.base_accuracy:.2f}%"
    return (
        f"{report.model} ({report.model_format}) · fit {report.fit_data} · eval {evaluated} · "
        f"base accuracy {base} · {report.passes} forward {'pass' if report.passes == 1 else 'passes'}"
    )


def _cell(report: ProjectionReport, result: ProjectionResult, width: int) -> Text:
    """k/d, then accuracy and its change in points (red beyond the limit) and the output change."""
    k = sum(result.k.values()) if isinstance(result.k, dict) else result.k
    text = Text(f"{k}/{width}".rjust(5))
    change = _change(result.output_change).rjust(7)
    if report.base_accuracy is not None and result.accuracy is not None:
        points = 100 * (result.accuracy - report.base_accuracy)
        style = "bold red" if points < -DROP_POINTS else ""
        text.append(f"{100 * result.accuracy:7.1f}{points:+6.1f}", style=style)
        text.append(change, style="dim")
    else:
        text.append(change, style="bold red" if result.output_change > CHANGE_LIMIT else "")
    return text


def _change(x: float) -> str:
    return NOT_AVAILABLE if x != x else f"{x:.3f}"


def _legend(report: ProjectionReport) -> str:
    what = (
        f"acc%: accuracy, pts: its change from the base (red: more than {DROP_POINTS:g} points lower)"
        if report.base_accuracy is not None
        else f"red: output change above {CHANGE_LIMIT:g}"
    )
    return (
        f"k/d: eigen-directions kept / width (all: summed) · {what} · Δout: output change "
        f"||f_P(x) - f(x)|| / ||f(x)|| over the evaluation set · fit on {plural(report.fit_inputs, 'input')}, "
        f"evaluated on {plural(report.eval_inputs, 'input')}"
    )


def plot_projection(report: ProjectionReport, output: Path) -> Path:
    """Accuracy (or output change without labels) against delta, one line per layer and one for all layers."""
    figure_class, canvas_class = matplotlib_classes()
    fig = figure_class(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    labelled = report.base_accuracy is not None
    positions = list(range(len(report.deltas)))
    for scope, name in [("layer", layer.name) for layer in report.layers] + [("all", None)]:
        points = [r for r in report.results if r.scope == scope and r.layer == name]
        if not points:
            continue
        values = [_plot_value(r, labelled) for r in sorted(points, key=lambda r: r.delta)]
        style: dict[str, Any] = {"linewidth": 2.5, "color": "black"} if scope == "all" else {}
        ax.plot(positions, values, marker="o", label=name or f"{ALL} (non-output)", **style)
    if labelled:
        assert report.base_accuracy is not None
        ax.axhline(100 * report.base_accuracy, color="grey", linestyle="--", label="unprojected")
        ax.set_ylabel("accuracy on the evaluation data (%)")
    else:
        ax.set_ylabel("output change ||f_P - f|| / ||f||")
    ax.set_xticks(positions, [f"{d:g}" for d in report.deltas])
    ax.set_xlabel("delta (share of variance kept)")
    ax.set_title(f"{Path(report.model).name}: eigenspace projection", fontsize=10)
    ax.legend(fontsize=7)
    canvas_class(fig)
    return save_figure(fig, Path(output))


def _plot_value(result: ProjectionResult, labelled: bool) -> float:
    if labelled and result.accuracy is not None:
        return 100 * result.accuracy
    return result.output_change
