"""Narrow consoles: numbers and layer names are never cut; names wrap only after dots, never with an ellipsis."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from satcli.render.text import DottedName, Fit, print_fitted

NAMES = ["encoder.layers.encoder_layer_0.self_attention", "encoder.layers.encoder_layer_1.mlp.3", "heads.head"]
NUMBERS = ["0.0963", "65/192", "123456.789"]


@pytest.mark.parametrize("width", [80, 60, 40])
def test_names_wrap_at_dots_and_numbers_stay_whole(width: int) -> None:
    table = Table(box=None, pad_edge=False)
    table.add_column("layer")
    for header in ("a", "b", "c"):
        table.add_column(header, justify="right", no_wrap=True)
    for name in NAMES:
        table.add_row(DottedName(name), *NUMBERS)
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_fitted(console, Fit(table))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text
    assert all(number in text for number in NUMBERS)
    lines = [line[: line.index(NUMBERS[0]) if NUMBERS[0] in line else len(line)].strip() for line in text.splitlines()]
    joined = "".join(line if line.endswith(".") else line + "\n" for line in lines[1:] if line)
    assert joined.split() == NAMES, text
