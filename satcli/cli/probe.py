"""`satcli probe`: linear-probe accuracy per layer (docs/method.md sec. 9) beside saturation and the tail."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stdout_console
from satcli.cli.groups import DataArgs, ModelArgs, with_groups
from satcli.cli.options import (
    CheckFormat,
    EvalData,
    EvalSplit,
    Exclude,
    Layers,
    ModelArgument,
    ObjectFormat,
    with_model_preprocessors,
)

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult


@app.command("probe")
@with_groups
def probe_command(
    model: ModelArgument,
    *,
    data: DataArgs,
    eval_data: EvalData = None,
    eval_split: EvalSplit = None,
    ridge: Annotated[float, typer.Option(help="Ridge alpha in units of the layer's mean variance.")] = 1e-3,
    model_args: ModelArgs,
    layers: Layers = None,
    exclude: Exclude = None,
    output_format: ObjectFormat = CheckFormat.table,
) -> None:
    """Fit a linear probe per layer on --data and report its accuracy on --eval-data.

    Each layer's ridge probe comes from the streamed moments and per-class sums of the fit pass
    (labelled data); a second pass counts its correct predictions on the evaluation data. The table
    shows the accuracy, the gain over the previous layer and whether the layer is in the saturation tail.
    """
    from satcli.cli.options import eval_source
    from satcli.data import open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.run import analyze
    from satcli.models import resolve_device
    from satcli.render.serialize import result_json

    fit_options = with_model_preprocessors(data.options(model_args.trust_remote_code), model)
    fit = open_data(data.data, fit_options)
    options = AnalysisOptions(
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        store_activations=False,
        analyses=(f"probe:ridge={ridge}",),
        eval_data=eval_source(eval_data, eval_split, data.data, data.split, fit_options),
    )
    result = analyze(model_args.loader(resolve_device(model_args.device), data.download)(model), fit, options)
    if output_format is CheckFormat.json:
        sys.stdout.write(result_json(result) + "\n")
        sys.stdout.flush()
    else:
        out = stdout_console(highlight=False)
        options = result.options
        out.print(f"{result.model} · fit {options.get('data')} · eval {options.get('eval_data')}", soft_wrap=True)
        out.print(probe_table(result))


def probe_table(result: CheckpointResult) -> object:
    """One row per layer: width, saturation, tail, probe accuracy and gain."""
    from rich import box
    from rich.table import Table

    from satcli.analyses.base import number_cell, percent_cell

    table = Table(box=box.SIMPLE_HEAD)
    for header in ("#", "layer", "width", "saturation", "tail", "probe", "gain", "n_eval"):
        table.add_column(header, justify="left" if header in ("layer", "tail") else "right")
    tail = set(result.verdict.tail)
    for i, layer in enumerate(result.layers, start=1):
        probe = layer.extras.get("probe") or {}
        table.add_row(
            str(i),
            layer.name,
            str(layer.width),
            percent_cell(layer.saturation),
            "tail" if layer.name in tail else "",
            percent_cell(probe.get("accuracy")),  # type: ignore[union-attr]
            number_cell(probe.get("gain"), "+.1%"),  # type: ignore[union-attr]
            str(probe.get("n_eval", "")),  # type: ignore[union-attr]
        )
    return table
