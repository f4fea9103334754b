"""`satcli rf`: data-free receptive fields per layer and the layers past the input's border (docs/method.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.cli.groups import ModelFileArgs, with_groups
from satcli.cli.options import CheckFormat, ObjectFormat
from satcli.cli.weights import Model, Plot, _load, _show


@app.command("rf")
@with_groups
def rf_command(
    model: Model,
    *,
    input_size: Annotated[
        list[str],
        typer.Option("--input-size", help="Input size S or HxW; repeat for several sizes.", show_default=False),
    ],
    output_format: ObjectFormat = CheckFormat.table,
    plot: Plot = None,
    loading: ModelFileArgs,
) -> None:
    """Receptive field of every layer (r_min, r_max over paths, stride) and which are past the border per size.

    A layer whose smallest receptive field exceeds the input size cannot see new context; Richter et al.
    (2021) predict such layers to be the unproductive tail. No data are needed.
    """
    from satcli.render.rf import plot_rf, rf_json, rf_table
    from satcli.rf.report import parse_size, rf_report

    sizes = [parse_size(text) for text in input_size]
    loaded = _load(model, loading, plot)
    report = rf_report(loaded.module, sizes, loaded.input_shape[1:] if loaded.input_shape else None)
    if plot is not None:
        plot_rf(report, plot)
    _show(
        output_format,
        lambda: rf_json(report, str(model), loaded.format),
        lambda: rf_table(report, str(model), loaded.format),
    )
