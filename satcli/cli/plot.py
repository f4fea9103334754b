"""`satcli plot`: saturation plots from a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.render.plot import load_results, plot_results
from satcli.store.rescore import ThresholdOverrides, parse_store_ref


@app.command("plot")
def plot_command(
    stores: Annotated[
        list[str],
        typer.Argument(
            help="Stores written by analyze; STORE.h5:NNNN selects one checkpoint group.",
            metavar="STORE.h5[:NNNN]...",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Image to write; the suffix picks the format (.png, .svg, .pdf).")
    ],
    checkpoint: Annotated[
        list[str] | None,
        typer.Option("--checkpoint", "-c", metavar="NNNN", help="Plot only this checkpoint group (repeatable)."),
    ] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="delta for k. (default: as stored)")] = None,
    tail_threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="A layer below this can be in the tail. (default: as stored)")
    ] = None,
    max_tail: Annotated[
        int | None, typer.Option(min=0, help="Overparameterized when the tail is longer. (default: as stored)")
    ] = None,
    under_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Underparameterized when the average is at least this. (default: as stored)"
        ),
    ] = None,
) -> None:
    """Plot saturation from a store: bars per layer for one checkpoint, a layers x checkpoints heatmap for several.

    Needs matplotlib (pip install 'satcli\\[plot]'). Numbers are re-scored from the store, as by report.
    """
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    results = load_results(stores, checkpoint or [], overrides)
    source = ", ".join(dict.fromkeys(parse_store_ref(text).path.name for text in stores))
    written = plot_results(results, output, source)
    typer.echo(f"wrote {written} ({len(results)} checkpoint{'s' if len(results) != 1 else ''})", err=True)
