"""Formats a Comparison: a table, JSON, or CSV (a layer missing from a checkpoint shows as "-")."""

from __future__ import annotations

import csv
import io
import json
import math

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.core.compare import Column, Comparison, change_pp
from satcli.core.spectral import LayerScore
from satcli.core.verdict import INCONCLUSIVE
from satcli.render.text import DottedName, Fit, column_blocks, format_percent
from satcli.store.similarity import StoredCKA

MISSING = "-"


CSV_FIELDS: tuple[str, ...] = (
    "layer_index",
    "layer",
    "label",
    "source",
    "model",
    "present",
    "k",
    "width",
    "saturation",
    "change_pp",
    "average_saturation",
    "average_change_pp",
    "verdict",
)


def _saturation(score: LayerScore | None) -> float | None:
    return None if score is None else score.saturation


def _format_change(x: float | None) -> str:
    return MISSING if x is None else f"{x:+.1f}"


def _cell(score: LayerScore | None) -> str:
    return MISSING if score is None else format_percent(score.saturation)


def comparison_table(comparison: Comparison, width: int | None = None) -> RenderableType:
    """A legend (label = source and model), then layers x checkpoints with the change from the baseline.

    Given a console `width`, the checkpoints after the baseline are split into blocks that fit it (each block
    repeats the layer names and the baseline), as the trajectory table does, so no column is dropped.
    """
    columns = comparison.columns
    legend = Table.grid(padding=(0, 1))
    # Paths fold onto the next line rather than end in "…" (a grid column's default overflow).
    for _ in range(3):
        legend.add_column(overflow="fold")
    for c in columns:
        legend.add_row(Text(c.label, style="bold"), Text(c.source), Text(f"({c.result.model})", style="dim"))
    parts: list[RenderableType] = [legend]
    for block in _blocks(comparison, width):
        parts += [Text(""), Fit(_block_table(comparison, block))]
    parts.append(Text(f"Δ: change from {columns[0].label} in percentage points", style="dim"))
    parts += _reasons(columns)
    return Group(*parts)


def _verdict_cell(c: Column) -> str:
    """The verdict in the table: an inconclusive one without its reason (a line under the table gives it), so a
    long reason does not widen the column until the layer names no longer fit."""
    verdict = c.result.verdict
    return INCONCLUSIVE if verdict.inconclusive is not None else verdict.label


def _reasons(columns: list[Column]) -> list[RenderableType]:
    """One line per distinct inconclusive verdict, naming the checkpoints it holds for."""
    labels: dict[str, list[str]] = {}
    for c in columns:
        if c.result.verdict.inconclusive is not None:
            labels.setdefault(c.result.verdict.label, []).append(c.label)
    return [Text(f"{', '.join(names)}: {label}") for label, names in labels.items()]


def _blocks(comparison: Comparison, width: int | None) -> list[list[Column]]:
    """The checkpoints after the baseline, in blocks whose table fits `width` (one block when None)."""
    columns = comparison.columns
    base, others = columns[0], list(columns[1:])
    if width is None or not others:
        return [others]
    names = [*comparison.layers, "average", "tail", "verdict"]
    fixed = max(len(n) for n in names) + _column_width(base)
    needs = [_column_width(c) + max(len(f"Δ {c.label}-{base.label}"), 6) + 1 for c in others]
    return [others[block.start : block.stop] for block in column_blocks(fixed, needs, width)]


def _column_width(c: Column) -> int:
    """Cells of one checkpoint's saturation column, its left padding included."""
    return max(len(c.label), len(_verdict_cell(c)), 6) + 1


def _block_table(comparison: Comparison, others: list[Column]) -> Table:
    base = comparison.columns[0]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), header_style="bold")
    table.add_column("layer")
    table.add_column(base.label, justify="right", no_wrap=True)
    for c in others:
        table.add_column(c.label, justify="right", no_wrap=True)
        table.add_column(f"Δ {c.label}-{base.label}", justify="right", no_wrap=True)
    for name in comparison.layers:
        base_score = base.score(name)
        row: list[RenderableType] = [DottedName(name), _cell(base_score)]
        for c in others:
            score = c.score(name)
            row += [_cell(score), _format_change(change_pp(_saturation(base_score), _saturation(score)))]
        table.add_row(*row)
    table.add_section()
    average = ["average", format_percent(base.result.verdict.average)]
    verdict = [Text("verdict"), Text(_verdict_cell(base))]
    tail = ["tail", str(len(base.result.verdict.tail))]
    for c in others:
        v = c.result.verdict
        average += [format_percent(v.average), _format_change(change_pp(base.result.verdict.average, v.average))]
        verdict += [Text(_verdict_cell(c)), Text("")]
        tail += [str(len(v.tail)), f"{len(v.tail) - len(base.result.verdict.tail):+d}"]
    table.add_row(*average)
    table.add_row(*tail)
    table.add_row(*verdict)
    return table


def _number(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def comparison_json(comparison: Comparison) -> str:
    """The comparison as one line of JSON: checkpoints with average and verdict, and per layer the values."""
    base = comparison.columns[0].result.verdict.average
    checkpoints = [
        {
            "label": c.label,
            "source": c.source,
            "model": c.result.model,
            "sha256": c.result.sha256,
            "data": c.result.data,
            "average_saturation": _number(c.result.verdict.average),
            "average_change_pp": None if i == 0 else change_pp(base, c.result.verdict.average),
            "verdict": c.result.verdict.label,
            "tail": list(c.result.verdict.tail),
            "thresholds": c.result.verdict.thresholds.to_dict(),
        }
        for i, c in enumerate(comparison.columns)
    ]
    layers = []
    for name in comparison.layers:
        scores = [c.score(name) for c in comparison.columns]
        baseline = _saturation(scores[0])
        layers.append(
            {
                "name": name,
                "present": [s is not None for s in scores],
                "k": [None if s is None else s.k for s in scores],
                "saturation": [_number(_saturation(s)) for s in scores],
                "change_pp": [None] + [change_pp(baseline, _saturation(s)) for s in scores[1:]],
            }
        )
    data = {"baseline": comparison.columns[0].label, "checkpoints": checkpoints, "layers": layers}
    return json.dumps(data, allow_nan=False, ensure_ascii=False)


def _csv_value(x: float | int | None) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else str(x)


def comparison_csv(comparison: Comparison) -> str:
    """One row per layer and checkpoint (long format); change columns are empty for the baseline."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    base = comparison.columns[0]
    base_average = base.result.verdict.average
    for index, name in enumerate(comparison.layers, start=1):
        baseline = _saturation(base.score(name))
        for i, c in enumerate(comparison.columns):
            score = c.score(name)
            v = c.result.verdict
            writer.writerow(
                {
                    "layer_index": str(index),
                    "layer": name,
                    "label": c.label,
                    "source": c.source,
                    "model": c.result.model,
                    "present": "true" if score is not None else "false",
                    "k": _csv_value(None if score is None else score.k),
                    "width": _csv_value(None if score is None else score.width),
                    "saturation": _csv_value(_saturation(score)),
                    "change_pp": "" if i == 0 else _csv_value(change_pp(baseline, _saturation(score))),
                    "average_saturation": _csv_value(v.average),
                    "average_change_pp": "" if i == 0 else _csv_value(change_pp(base_average, v.average)),
                    "verdict": v.label,
                }
            )
    return out.getvalue()


def cka_table(comparison: Comparison, cka: StoredCKA) -> RenderableType:
    """Per layer, linear CKA between the baseline's stored activations and each other checkpoint's."""
    base = comparison.columns[0].label
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("layer", no_wrap=True)
    for column in comparison.columns[1:]:
        table.add_column(f"{base}-{column.label}", justify="right", no_wrap=True)
    for name in cka.layers:
        table.add_row(name, *(MISSING if v is None else f"{v:.3f}" for v in cka.values[name]))
    return Group(Text(f"linear CKA with {base}, from the stored activations", style="bold"), table)


def cka_record(comparison: Comparison, cka: StoredCKA) -> dict[str, object]:
    """{"baseline": label, "layers": {layer: {label: cka}}} for the JSON output."""
    labels = [c.label for c in comparison.columns[1:]]
    return {
        "baseline": comparison.columns[0].label,
        "layers": {name: dict(zip(labels, cka.values[name], strict=True)) for name in cka.layers},
    }
