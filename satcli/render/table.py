"""The terminal report of one checkpoint: a header line, the per-layer table, the verdict panel.

Everything here only formats: layer scores and the verdict come from satcli.core, so the printed numbers
are exactly the stored ones and no rule is re-applied while rendering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from satcli.analyses.base import Column
from satcli.analyses.registry import LAYER_ANALYSES, table_columns
from satcli.core.results import CheckpointResult
from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, FLAG_UNDERSAMPLED, LayerScore
from satcli.core.verdict import BALANCED, OVER, UNDER, Thresholds, Verdict
from satcli.render.text import (
    FLAG_STYLES,
    MARK_OUTPUT,
    MARK_TAIL,
    NOT_AVAILABLE,
    DottedName,
    Fit,
    SaturationBar,
    fitted,
    format_percent,
    least_width,
    natural_width,
    plural,
    threshold_percent,
    verdict_style,
)

# Index of the saturation bar in the layer table: the first column to give up cells.
SATURATION_COLUMN = 6

# Width a report may take in a log when only its verdict panel's prose would make it wider.
LOG_WIDTH = 120


def _flags_text(layer: LayerScore, verdict: Verdict) -> Text:
    """The layer's own flags and its analyses' flags, then whether it is in the tail or the output layer."""
    needed = dict(verdict.inputs_needed).get(layer.name)
    parts: list[tuple[str, str]] = [
        (
            f"{flag} (need {needed})" if flag == FLAG_UNDERSAMPLED and needed else flag,
            FLAG_STYLES.get(flag, "yellow"),
        )
        for flag in layer.flags
    ]
    if layer.extras:
        entry = layer.to_dict()
        parts += [(word, "yellow") for analysis in LAYER_ANALYSES.values() for word in analysis.flags(entry)]
    if layer.name in verdict.tail:
        parts.append((MARK_TAIL, "magenta"))
    if layer.name == verdict.output_layer:
        parts.append((MARK_OUTPUT, "dim"))
    text = Text()
    for i, (part, style) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(part, style=style)
    return text


def _sample_count(result: CheckpointResult) -> str:
    """Inputs seen, when the run recorded them; otherwise the largest per-layer sample count."""
    num_inputs = result.options.get("num_inputs")
    if isinstance(num_inputs, (int, np.integer)) and not isinstance(num_inputs, bool):
        return plural(int(num_inputs), "input")
    return plural(max((layer.samples for layer in result.layers), default=0), "sample")


def _reduction_summary(result: CheckpointResult) -> str:
    """Reduction options ("conv_reduction" shown as conv=mean); without any, the distinct layer reductions."""
    from_options = [
        f"{key.removesuffix('_reduction')}={value}" if key != "reduction" else str(value)
        for key, value in result.options.items()
        if "reduction" in key
    ]
    if from_options:
        return ", ".join(from_options)
    used = dict.fromkeys(layer.reduction for layer in result.layers if layer.reduction != "none")
    return ", ".join(used)


def _header(result: CheckpointResult) -> Text:
    text = Text()
    text.append(result.model, style="bold")
    text.append(f" ({result.model_format})")
    parts = [("data", result.data), (None, _sample_count(result))]
    reduction = _reduction_summary(result)
    if reduction:
        parts.append(("reduction", reduction))
    passes = result.options.get("memory_passes")
    if isinstance(passes, int) and passes > 1:
        parts.append((None, f"{passes} passes (memory budget)"))
    for label, value in parts:
        text.append(" · ", style="dim")
        if label:
            text.append(f"{label} ", style="dim")
        text.append(value)
    return text


def shown_columns(result: CheckpointResult, asked: Sequence[str] = ()) -> list[Column]:
    """The analyses' columns this table shows: default ones whose key some layer has, and those `asked` for by
    header (or by analysis name: all of its columns)."""
    present = {key for layer in result.layers for key in layer.extras}
    return [
        column
        for analysis, column in table_columns()
        if (column.default and column.key in present) or column.header in asked or analysis in asked
    ]


def _layer_table(result: CheckpointResult, asked: Sequence[str] = ()) -> Fit:
    """The per-layer table; on a narrow console the bar goes first, then names wrap at dots and flags at spaces;
    numbers are never cut."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer")
    table.add_column("type")
    table.add_column("width", justify="right", no_wrap=True)
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("k", justify="right", no_wrap=True)
    # Not no_wrap: Rich only narrows wrappable columns, and SaturationBar gives up bar cells to fit.
    table.add_column("saturation")
    columns = shown_columns(result, asked)
    for column in columns:
        table.add_column(column.header, justify="right", no_wrap=True)
    table.add_column("flags")
    for index, layer in enumerate(result.layers, start=1):
        entry = layer.to_dict() if columns else {}
        between = [column.cell(entry) for column in columns]
        table.add_row(
            str(index),
            DottedName(layer.name),
            DottedName(layer.type, camel=True),
            str(layer.width),
            str(layer.samples),
            NOT_AVAILABLE if layer.k is None else str(layer.k),
            SaturationBar(layer.saturation),
            *between,
            _flags_text(layer, result.verdict),
        )
    return Fit(table, first=[SATURATION_COLUMN])


def _class_notes(result: CheckpointResult) -> list[str]:
    """Each distinct note of the class spectra once, with the layers it concerns."""
    where: dict[str, list[str]] = {}
    for layer in result.layers:
        notes = layer.extras.get("classes", {}).get("notes", [])
        for note in notes if isinstance(notes, list) else []:
            where.setdefault(str(note), []).append(layer.name)
    return [
        f"classes: {note} ({', '.join(names) if len(names) < len(result.layers) else 'every layer'})"
        for note, names in where.items()
    ]


def _not_counted(result: CheckpointResult) -> str:
    """Why layers are missing from the average: dead, non-finite or unscored counts, and the output layer."""
    verdict = result.verdict
    averaged = set(verdict.averaged_layers)
    reasons: dict[str, int] = {}
    for layer in result.layers:
        if layer.name in averaged or layer.name == verdict.output_layer:
            continue
        if FLAG_NONFINITE in layer.flags:
            reason = "non-finite"
        elif FLAG_DEAD in layer.flags:
            reason = "dead"
        else:
            reason = "unscored"
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = [f"{count} {reason}" for reason, count in reasons.items()]
    if verdict.output_layer is not None:
        parts.append("output layer")
    return ", ".join(parts)


def _average_line(result: CheckpointResult) -> str:
    verdict = result.verdict
    line = f"{format_percent(verdict.average)} over {plural(len(verdict.averaged_layers), 'layer')}"
    not_counted = _not_counted(result)
    return f"{line} (not counted: {not_counted})" if not_counted else line


def _tail_line(verdict: Verdict) -> str:
    if not verdict.tail:
        return "none"
    return f"{plural(len(verdict.tail), 'layer')}: {', '.join(verdict.tail)}"


def _thresholds_line(thresholds: Thresholds) -> str:
    return " · ".join(
        (
            f"delta {thresholds.delta:g}",
            f"tail < {threshold_percent(thresholds.tail_threshold)}",
            f"max tail {thresholds.max_tail}",
            f"under >= {threshold_percent(thresholds.under_threshold)}",
        )
    )


def _rule_lines(verdict: Verdict) -> list[str]:
    """One line per rule that fired, or the comparisons that kept the verdict balanced."""
    t = verdict.thresholds
    tail_len = plural(len(verdict.tail), "layer")
    average = format_percent(verdict.average)
    under = threshold_percent(t.under_threshold)
    if verdict.inconclusive is not None:
        return [
            f"{_inconclusive_rule(verdict)} -> inconclusive",
            f"not applied: tail {len(verdict.tail)} (max tail {t.max_tail}), average {average} (under >= {under})",
        ]
    lines: list[str] = []
    if verdict.overparameterized:
        lines.append(f"tail of {tail_len} > max tail {t.max_tail} -> {OVER}")
    if verdict.underparameterized:
        lines.append(f"average {average} >= {under} -> {UNDER}")
    if not lines:
        lines.append(
            f"no rule fired (tail {len(verdict.tail)} <= max tail {t.max_tail}, average {average} < {under})"
            f" -> {BALANCED}"
        )
    return lines


def _inconclusive_rule(verdict: Verdict) -> str:
    """Which artefact made the verdict inconclusive, in the words of the documented rule."""
    if verdict.undersampled:
        return "most averaged layers undersampled (samples <= width)"
    return "no averaged layer has any variance"


def _verdict_panel(result: CheckpointResult) -> Panel:
    verdict = result.verdict
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("verdict", Text(verdict.label, style=verdict_style(verdict)))
    grid.add_row("average saturation", Text(_average_line(result)))
    grid.add_row("tail", Text(_tail_line(verdict)))
    grid.add_row("thresholds", Text(_thresholds_line(verdict.thresholds)))
    for i, line in enumerate(_rule_lines(verdict)):
        grid.add_row("rule" if i == 0 else "", Text(line))
    return Panel(grid, title="verdict", title_align="left", expand=False, box=box.ROUNDED)


def render_result(result: CheckpointResult, console: Console, columns: Sequence[str] = ()) -> None:
    """Print one checkpoint: a header line, the per-layer table in forward order, and the verdict panel.

    `columns`: analyses' optional columns to add, by header or analysis name (``satcli analyses`` lists them).
    """
    header, table, panel = _header(result), _layer_table(result, columns), _verdict_panel(result)
    # Where the console has no width of its own: names whole, and the panel's long lines (a tail of many layers)
    # wrapped at word boundaries within the table's width or LOG_WIDTH, whichever is wider.
    widest = max(natural_width(console, table), natural_width(console, header))
    wanted = max(widest, min(natural_width(console, panel), max(widest, LOG_WIDTH)))
    with fitted(console, wanted, least_width(console, table)):
        console.print(header)
        console.print(table)
        for note in _class_notes(result):
            console.print(Text(note, style="dim"), soft_wrap=True)
        console.print(panel)
