"""Present the resolution sweep: a layers x sizes table of saturation, the tail per size and the border beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.engine.resolution import Borders, SizeResult
from satcli.render.rf import border_note, size_label
from satcli.render.serialize import json_ready
from satcli.render.text import DottedName, Fit, format_percent

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
    names = list(dict.fromkeys(layer.name for item in results for layer in item.result.layers))
    for name in names:
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
