"""`satcli svr` and `satcli weights`: the data-free analyses of the weights (docs/method.md secs. 5 and 6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stdout_console
from satcli.cli.groups import ModelFileArgs, with_groups
from satcli.cli.options import CheckFormat, ObjectFormat

if TYPE_CHECKING:
    from satcli.models import LoadedModel


class Method(str, Enum):
    svr = "svr"
    cosvr = "cosvr"


Model = Annotated[
    Path, typer.Argument(help="Model file: .pt2, TorchScript, state dict or .safetensors.", show_default=False)
]
Plot = Annotated[Path | None, typer.Option(help="Also save a figure to this file (.png, .pdf, .svg).")]


def _load(model: Path, loading: ModelFileArgs, plot: Path | None) -> LoadedModel:
    """The model on the CPU, once a --plot path is known to be writable (refused before any work)."""
    from satcli.render.plot import check_image_path

    if plot is not None:
        check_image_path(plot)
    return loading.load(model, device="cpu")


def _show(output_format: CheckFormat, document: Callable[[], object], table: Callable[[], object]) -> None:
    """The report as indented JSON or as a table on stdout."""
    from satcli.render.text import print_fitted

    if output_format is CheckFormat.json:
        typer.echo(json.dumps(document(), indent=2))
    else:
        print_fitted(stdout_console(highlight=False), table())


@app.command("svr")
@with_groups
def svr_command(
    model: Model,
    *,
    sigma: Annotated[float, typer.Option(help="Significance of an edge in sigma (p = 1 - Phi(sigma)).")] = 3.0,
    max_modes: Annotated[int, typer.Option(help="Spectral neurons per layer (top singular values).")] = 128,
    method: Annotated[Method, typer.Option(help="svr | cosvr (kernel positions on the output side).")] = Method.svr,
    fold_bn: Annotated[bool, typer.Option(help="Fold a BatchNorm right after a layer into its rows.")] = True,
    input_shape: Annotated[
        str | None, typer.Option(help="Per-sample input shape C,H,W for the one forward pass that orders layers.")
    ] = None,
    output_format: ObjectFormat = CheckFormat.table,
    graphml: Annotated[Path | None, typer.Option(help="Write the graph of significant edges as GraphML.")] = None,
    plot: Plot = None,
    loading: ModelFileArgs,
) -> None:
    """Singular Value Representation: significant links between spectral neurons of consecutive layers."""
    from satcli.render.weight_plots import plot_svr
    from satcli.render.weights import svr_json, svr_table
    from satcli.weights.chain import parse_shape
    from satcli.weights.graphml import write_graphml
    from satcli.weights.report import svr_report

    loaded = _load(model, loading, plot)
    shape = parse_shape(input_shape) if input_shape else None
    report = svr_report(
        loaded.module, input_shape=shape, method=method.value, sigma=sigma, max_modes=max_modes, fold_bn=fold_bn
    )
    if graphml is not None:
        write_graphml(report, graphml)
    if plot is not None:
        plot_svr(report, plot)
    _show(
        output_format,
        lambda: svr_json(report, str(model), loaded.format),
        lambda: svr_table(report, str(model), loaded.format),
    )


@app.command("weights")
@with_groups
def weights_command(
    model: Model,
    *,
    output_format: ObjectFormat = CheckFormat.table,
    plot: Plot = None,
    loading: ModelFileArgs,
) -> None:
    """Weight spectra per layer: norms, stable rank and WeightWatcher's power-law alpha with its reading."""
    from satcli.render.weight_plots import plot_esd
    from satcli.render.weights import weights_json, weights_table
    from satcli.weights.report import weights_report

    loaded = _load(model, loading, plot)
    with_eigenvalues = weights_report(loaded.module)
    found = [spectrum for spectrum, _ in with_eigenvalues]
    if plot is not None:
        plot_esd(with_eigenvalues, plot)
    _show(
        output_format,
        lambda: weights_json(found, str(model), loaded.format),
        lambda: weights_table(found, str(model), loaded.format),
    )
