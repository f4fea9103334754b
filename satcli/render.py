"""Turn CheckpointResults into a terminal report, JSON, CSV, and a progress bar.

Everything here only formats: layer scores and the verdict come from satcli.spectral and satcli.verdict,
so the printed numbers are exactly the stored ones and no rule is re-applied while rendering.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import PurePath

import numpy as np
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from satcli.results import CheckpointResult
from satcli.spectral import FLAG_DEAD, FLAG_NONFINITE, LayerScore
from satcli.verdict import BALANCED, OVER, UNDER, Thresholds, Verdict

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

CSV_FIELDS: tuple[str, ...] = (
    "model",
    "sha256",
    "data",
    "layer_index",
    "layer",
    "type",
    "width",
    "samples",
    "k",
    "saturation",
    "flags",
    "reduction",
    "is_output",
    "in_tail",
    "average_saturation",
    "verdict",
)


def format_percent(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("52.3%"), or "n/a" when missing or not finite."""
    if x is None or not math.isfinite(x):
        return NOT_AVAILABLE
    return f"{x * 100:.1f}%"


def _threshold_percent(x: float) -> str:
    """A threshold as a percentage without float noise: 0.2 -> "20%", 0.125 -> "12.5%"."""
    return f"{x * 100:.10g}%"


def _plural(n: int, word: str) -> str:
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


def _flags_text(layer: LayerScore, verdict: Verdict) -> Text:
    """The layer's own flags, then whether it is in the tail and whether it is the output layer."""
    parts: list[tuple[str, str]] = [(flag, FLAG_STYLES.get(flag, "yellow")) for flag in layer.flags]
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
        return _plural(int(num_inputs), "input")
    return _plural(max((layer.samples for layer in result.layers), default=0), "sample")


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
    for label, value in parts:
        text.append(" · ", style="dim")
        if label:
            text.append(f"{label} ", style="dim")
        text.append(value)
    return text


def _layer_table(result: CheckpointResult) -> Table:
    """The per-layer table; on a narrow console the bar shrinks and names and flags wrap, numbers never do."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer", overflow="fold")
    table.add_column("type", no_wrap=True)
    table.add_column("width", justify="right", no_wrap=True)
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("k", justify="right", no_wrap=True)
    # Not no_wrap: Rich only narrows wrappable columns, and SaturationBar gives up bar cells to fit.
    table.add_column("saturation")
    table.add_column("flags", overflow="fold")
    for index, layer in enumerate(result.layers, start=1):
        table.add_row(
            str(index),
            Text(layer.name),
            Text(layer.type),
            str(layer.width),
            str(layer.samples),
            NOT_AVAILABLE if layer.k is None else str(layer.k),
            SaturationBar(layer.saturation),
            _flags_text(layer, result.verdict),
        )
    return table


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
    line = f"{format_percent(verdict.average)} over {_plural(len(verdict.averaged_layers), 'layer')}"
    not_counted = _not_counted(result)
    return f"{line} (not counted: {not_counted})" if not_counted else line


def _tail_line(verdict: Verdict) -> str:
    if not verdict.tail:
        return "none"
    return f"{_plural(len(verdict.tail), 'layer')}: {', '.join(verdict.tail)}"


def _thresholds_line(thresholds: Thresholds) -> str:
    return " · ".join(
        (
            f"delta {thresholds.delta:g}",
            f"tail < {_threshold_percent(thresholds.tail_threshold)}",
            f"max tail {thresholds.max_tail}",
            f"under >= {_threshold_percent(thresholds.under_threshold)}",
        )
    )


def _rule_lines(verdict: Verdict) -> list[str]:
    """One line per rule that fired, or the comparisons that kept the verdict balanced."""
    t = verdict.thresholds
    tail_len = _plural(len(verdict.tail), "layer")
    average = format_percent(verdict.average)
    under = _threshold_percent(t.under_threshold)
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


def _verdict_style(verdict: Verdict) -> str:
    if verdict.underparameterized:
        return VERDICT_STYLES[UNDER]
    if verdict.overparameterized:
        return VERDICT_STYLES[OVER]
    return VERDICT_STYLES[BALANCED]


def _verdict_panel(result: CheckpointResult) -> Panel:
    verdict = result.verdict
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("verdict", Text(verdict.label, style=_verdict_style(verdict)))
    grid.add_row("average saturation", Text(_average_line(result)))
    grid.add_row("tail", Text(_tail_line(verdict)))
    grid.add_row("thresholds", Text(_thresholds_line(verdict.thresholds)))
    for i, line in enumerate(_rule_lines(verdict)):
        grid.add_row("rule" if i == 0 else "", Text(line))
    return Panel(grid, title="verdict", title_align="left", expand=False, box=box.ROUNDED)


def render_result(result: CheckpointResult, console: Console) -> None:
    """Print one checkpoint: a header line, the per-layer table in forward order, and the verdict panel."""
    console.print(_header(result))
    console.print(_layer_table(result))
    console.print(_verdict_panel(result))


# The trajectory table: layers x checkpoints (render_trajectory).
TRAJECTORY_MISSING = "-"
TRAJECTORY_TAIL_MARK = "*"
# Width of the widest cell a checkpoint column must hold: "100.0%*".
TRAJECTORY_CELL = PERCENT_CELLS + 1
TRAJECTORY_GAP = 2
TRAJECTORY_ROWS = ("average", "tail", "verdict")


def checkpoint_labels(models: Sequence[str]) -> list[str]:
    """Short unique names for checkpoint paths: the file stem, with parent folders only where stems clash.

    Paths still alike after every parent folder is used keep their full text; identical paths get #1, #2, ...
    """
    paths = [PurePath(m) for m in models]
    folders = [p.parent.relative_to(p.anchor).parts if p.anchor else p.parent.parts for p in paths]
    depth = [0] * len(paths)

    def label(i: int) -> str:
        used = folders[i][len(folders[i]) - depth[i] :] if depth[i] else ()
        return "/".join((*used, paths[i].stem))

    labels = [label(i) for i in range(len(paths))]
    while True:
        counts = Counter(labels)
        grow = [i for i, text in enumerate(labels) if counts[text] > 1 and depth[i] < len(folders[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
        labels = [label(i) for i in range(len(paths))]
    counts = Counter(labels)
    labels = [str(models[i]) if counts[text] > 1 else text for i, text in enumerate(labels)]
    counts, seen = Counter(labels), Counter[str]()
    numbered = []
    for text in labels:
        seen[text] += 1
        numbered.append(f"{text}#{seen[text]}" if counts[text] > 1 else text)
    return numbered


def trajectory_layers(results: Sequence[CheckpointResult]) -> list[str]:
    """Every layer name of the results once, in forward order; a layer only some have comes after its predecessor."""
    names: list[str] = []
    for result in results:
        at = -1
        for layer in result.layers:
            if layer.name in names:
                at = names.index(layer.name)
            else:
                at += 1
                names.insert(at, layer.name)
    return names


def short_verdict(verdict: Verdict) -> str:
    """ "balanced", "over", "under" or "under+over": a verdict that fits a narrow column."""
    names = [name for name, on in (("under", verdict.underparameterized), ("over", verdict.overparameterized)) if on]
    return "+".join(names) or BALANCED


def _trajectory_cells(result: CheckpointResult, layers: Sequence[str]) -> list[Text]:
    """One checkpoint's column: a saturation per layer (* in the tail), then average, tail length, verdict."""
    by_name = {layer.name: layer for layer in result.layers}
    verdict = result.verdict
    cells: list[Text] = []
    for name in layers:
        layer = by_name.get(name)
        if layer is None:
            cells.append(Text(TRAJECTORY_MISSING + " ", style="dim"))
            continue
        in_tail = name in verdict.tail
        mark = TRAJECTORY_TAIL_MARK if in_tail else " "
        cells.append(Text(format_percent(layer.saturation) + mark, style="magenta" if in_tail else ""))
    cells.append(Text(format_percent(verdict.average) + " "))
    cells.append(Text(f"{len(verdict.tail)} "))
    cells.append(Text(short_verdict(verdict), style=_verdict_style(verdict)))
    return cells


def always_output(name: str, results: Sequence[CheckpointResult]) -> bool:
    """True when the layer is the output layer of every result that has it."""
    having = [r for r in results if any(layer.name == name for layer in r.layers)]
    return all(r.verdict.output_layer == name for r in having)


def _trajectory_blocks(label_width: int, widths: Sequence[int], total: int) -> list[range]:
    """Consecutive column ranges, each as wide as fits in `total` cells next to the label column (at least one)."""
    blocks: list[range] = []
    start, used = 0, label_width
    for i, width in enumerate(widths):
        if i > start and used + TRAJECTORY_GAP + width > total:
            blocks.append(range(start, i))
            start, used = i, label_width
        used += TRAJECTORY_GAP + width
    if widths:
        blocks.append(range(start, len(widths)))
    return blocks


def _trajectory_legend(results: Sequence[CheckpointResult]) -> str:
    t = results[0].verdict.thresholds
    return (
        f"{TRAJECTORY_TAIL_MARK} in the tail (saturation < {_threshold_percent(t.tail_threshold)} at the end, "
        f"output layer not counted) · over = overparameterized (tail > {t.max_tail}) · "
        f"under = underparameterized (average >= {_threshold_percent(t.under_threshold)}) · delta {t.delta:g}"
    )


def render_trajectory(results: Sequence[CheckpointResult], console: Console) -> None:
    """Print saturation as a layers x checkpoints table: rows in forward order, columns in the given order.

    Below the layers come each checkpoint's average saturation, tail length and verdict. Columns are named
    by checkpoint_labels; when they do not fit the console's width the table is split into blocks of columns.
    """
    if not results:
        return
    layers = trajectory_layers(results)
    names = [f"{name} {MARK_OUTPUT}" if always_output(name, results) else name for name in layers]
    row_labels = [*names, *TRAJECTORY_ROWS]
    headers = checkpoint_labels([r.model for r in results])
    columns = [_trajectory_cells(r, layers) for r in results]
    widths = [max(len(h), TRAJECTORY_CELL, *(len(c) for c in col)) for h, col in zip(headers, columns, strict=True)]
    label_width = max(len(label) for label in [*row_labels, "layer"])
    data = ", ".join(dict.fromkeys(r.data for r in results))
    console.print(
        Text.assemble(
            ("saturation by layer and checkpoint", "bold"),
            (" · ", "dim"),
            _plural(len(results), "checkpoint"),
            (" · ", "dim"),
            ("data ", "dim"),
            data,
        )
    )
    for number, block in enumerate(_trajectory_blocks(label_width, widths, console.width)):
        if number:
            console.print()
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 0), header_style="bold")
        table.add_column("layer", overflow="fold", min_width=label_width)
        for i in block:
            # The box draws a one-cell divider before each column; min_width adds the rest of the gap.
            table.add_column(headers[i], justify="right", no_wrap=True, min_width=widths[i] + TRAJECTORY_GAP - 1)
        for row, label in enumerate(row_labels):
            name = Text(label)
            if label.endswith(MARK_OUTPUT):
                name.stylize("dim", len(label) - len(MARK_OUTPUT))
            if row >= len(layers):
                name.stylize("bold")
            table.add_row(name, *(columns[i][row] for i in block), end_section=row == len(layers) - 1)
        console.print(table)
    console.print(Text(_trajectory_legend(results), style="dim"))


def _json_ready(value: object) -> object:
    """Replace non-finite floats by None, numpy scalars by Python ones, tuples by lists, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


def result_json(result: CheckpointResult) -> str:
    """One checkpoint as one line of JSON without NaN; keys in to_dict's order, options sorted by key."""
    data = result.to_dict()
    options = data.get("options")
    if isinstance(options, dict):
        data["options"] = {key: options[key] for key in sorted(options, key=str)}
    return json.dumps(_json_ready(data), allow_nan=False, ensure_ascii=False, default=str)


def _csv_number(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return str(x)


def _csv_rows(result: CheckpointResult) -> Iterable[dict[str, str]]:
    verdict = result.verdict
    for index, layer in enumerate(result.layers, start=1):
        yield {
            "model": result.model,
            "sha256": result.sha256,
            "data": result.data,
            "layer_index": str(index),
            "layer": layer.name,
            "type": layer.type,
            "width": str(layer.width),
            "samples": str(layer.samples),
            "k": _csv_number(layer.k),
            "saturation": _csv_number(layer.saturation),
            "flags": ";".join(layer.flags),
            "reduction": layer.reduction,
            "is_output": "true" if layer.name == verdict.output_layer else "false",
            "in_tail": "true" if layer.name in verdict.tail else "false",
            "average_saturation": _csv_number(verdict.average),
            "verdict": verdict.label,
        }


def results_csv(results: Sequence[CheckpointResult]) -> str:
    """A header plus one row per checkpoint and layer (layer_index 1-based, as the table's #)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerows(_csv_rows(result))
    return out.getvalue()


def csv_header() -> str:
    """The CSV header line alone, for output that writes one checkpoint's rows at a time (csv_rows)."""
    return results_csv([])


def csv_rows(result: CheckpointResult) -> str:
    """One checkpoint's CSV rows without the header: results_csv([r]) == csv_header() + csv_rows(r)."""
    return results_csv([result])[len(csv_header()) :]


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
