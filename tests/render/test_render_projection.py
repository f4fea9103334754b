"""The projection table and JSON from a hand-made report: layout, highlighting, labelled and unlabelled."""

from __future__ import annotations

import io
import json
import math

from rich.console import Console

from satcli.core.projection import ProjectedLayer, ProjectionReport, ProjectionResult
from satcli.render.projection import projection_json, render_projection

LAYERS = (ProjectedLayer("conv", "Conv2d", 8, 640, False), ProjectedLayer("fc", "Linear", 4, 10, True))


def report(base: float | None, accuracy: float | None, change: float = 0.25) -> ProjectionReport:
    results = (
        ProjectionResult("layer", "conv", 0.9, 3, 8, accuracy, change),
        ProjectionResult("layer", "fc", 0.9, 2, 4, base, 0.0),
        ProjectionResult("all", None, 0.9, {"conv": 3}, None, accuracy, change),
    )
    return ProjectionReport("m.pt2", "export", "fit", "eval", 10, 5, (0.9,), LAYERS, base, results, 4)


def plain(r: ProjectionReport) -> str:
    console = Console(file=io.StringIO(), width=100, no_color=True)
    render_projection(r, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_labelled_table() -> None:
    text = plain(report(0.9, 0.8))
    lines = text.splitlines()
    assert lines[0] == "m.pt2 (export) · fit fit · eval eval · base accuracy 90.00% · 4 forward passes"
    assert "acc%" in lines[2] and "Δout" in lines[2]
    row = next(line for line in lines if line.startswith("conv"))
    assert row.split() == ["conv", "3/8", "80.0", "-10.0", "0.250"]
    assert next(line for line in lines if line.startswith("fc (output)")).split()[-3:] == ["90.0", "+0.0", "0.000"]
    assert next(line for line in lines if line.startswith("all (1 layer)")).split()[3:] == [
        "3/8",
        "80.0",
        "-10.0",
        "0.250",
    ]


def test_drops_beyond_half_a_point_are_red() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    render_projection(report(0.9, 0.8), console)
    red = console.file.getvalue()  # type: ignore[attr-defined]
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    render_projection(report(0.9, 0.897), console)
    kept = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1;31m" in red and "\x1b[1;31m" not in kept


def test_unlabelled_table_shows_output_change_only() -> None:
    text = plain(report(None, None))
    assert "base accuracy n/a (no labels)" in text and "acc%" not in text
    assert next(line for line in text.splitlines() if line.startswith("conv")).split() == ["conv", "3/8", "0.250"]


def test_json_is_strict() -> None:
    data = json.loads(projection_json(report(None, None, math.inf)))
    assert data["results"][0]["output_change"] is None and data["base_accuracy"] is None
    assert data["results"][2]["k"] == {"conv": 3} and data["passes"] == 4
