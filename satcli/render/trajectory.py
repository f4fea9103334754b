"""The trajectory table: saturation as layers x checkpoints, split into blocks that fit the console."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from satcli.core.layer_order import merge_layer_order
from satcli.core.results import CheckpointResult
from satcli.core.verdict import BALANCED, Verdict
from satcli.render.text import (
    MARK_OUTPUT,
    PERCENT_CELLS,
    DottedName,
    column_blocks,
    fitted,
    format_percent,
    plural,
    threshold_percent,
    verdict_style,
)

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
    """Every layer name of the results once, in forward order (the same rule as compare uses)."""
    return merge_layer_order([layer.name for layer in r.layers] for r in results)


def short_verdict(verdict: Verdict) -> str:
    """ "balanced", "over", "under", "under+over" or "inconcl.": a verdict that fits a narrow column."""
    if verdict.inconclusive is not None:
        return "inconcl."
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
    cells.append(Text(short_verdict(verdict), style=verdict_style(verdict)))
    return cells


def always_output(name: str, results: Sequence[CheckpointResult]) -> bool:
    """True when the layer is the output layer of every result that has it."""
    having = [r for r in results if any(layer.name == name for layer in r.layers)]
    return all(r.verdict.output_layer == name for r in having)


def _trajectory_legend(results: Sequence[CheckpointResult]) -> str:
    t = results[0].verdict.thresholds
    return (
        f"{TRAJECTORY_TAIL_MARK} in the tail (saturation < {threshold_percent(t.tail_threshold)} at the end, "
        f"output layer not counted) · over = overparameterized (tail > {t.max_tail}) · "
        f"under = underparameterized (average >= {threshold_percent(t.under_threshold)}) · delta {t.delta:g}"
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
    # Off a terminal: room for whole layer names and at least one checkpoint column beside them.
    with fitted(console, label_width + TRAJECTORY_GAP + max(widths)):
        _print_trajectory(results, console, row_labels, headers, columns, widths, label_width, len(layers))


def _print_trajectory(
    results: Sequence[CheckpointResult],
    console: Console,
    row_labels: Sequence[str],
    headers: Sequence[str],
    columns: Sequence[Sequence[Text]],
    widths: Sequence[int],
    label_width: int,
    num_layers: int,
) -> None:
    data = ", ".join(dict.fromkeys(r.data for r in results))
    console.print(
        Text.assemble(
            ("saturation by layer and checkpoint", "bold"),
            (" · ", "dim"),
            plural(len(results), "checkpoint"),
            (" · ", "dim"),
            ("data ", "dim"),
            data,
        )
    )
    for number, block in enumerate(column_blocks(label_width, widths, console.width, TRAJECTORY_GAP)):
        if number:
            console.print()
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 0), header_style="bold")
        table.add_column("layer", min_width=label_width)
        for i in block:
            # The box draws a one-cell divider before each column; min_width adds the rest of the gap.
            table.add_column(headers[i], justify="right", no_wrap=True, min_width=widths[i] + TRAJECTORY_GAP - 1)
        for row, label in enumerate(row_labels):
            name = Text(label)
            if label.endswith(MARK_OUTPUT):
                name.stylize("dim", len(label) - len(MARK_OUTPUT))
            if row >= num_layers:
                name.stylize("bold")
            table.add_row(DottedName(name), *(columns[i][row] for i in block), end_section=row == num_layers - 1)
        console.print(table)
    console.print(Text(_trajectory_legend(results), style="dim"))
