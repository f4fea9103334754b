"""`satcli plot`: saturation plots from a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.cli.groups import ThresholdArgs, with_groups
from satcli.cli.options import CheckpointKeys


@app.command("plot")
@with_groups
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
    *,
    checkpoint: CheckpointKeys = None,
    thresholds: ThresholdArgs,
) -> None:
    """Plot saturation from a store: bars per layer for one checkpoint, a layers x checkpoints heatmap for several.

    Needs matplotlib (pip install 'satcli[plot]'). Numbers are re-scored from the store, as by report.
    """
    from satcli.render.plot import plot_results
    from satcli.store.rescore import parse_store_ref, rescore_refs

    # Heavy modules (h5py, numpy) load here, not at start-up: --version and --help must stay fast.

    overrides = thresholds.overrides()
    results = [result for _, result in rescore_refs(stores, overrides, checkpoint or [])]
    source = ", ".join(dict.fromkeys(parse_store_ref(text).path.name for text in stores))
    written = plot_results(results, output, source)
    typer.echo(f"wrote {written} ({len(results)} checkpoint{'s' if len(results) != 1 else ''})", err=True)
