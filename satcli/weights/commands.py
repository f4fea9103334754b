"""Thin Typer commands ``svr`` and ``weights``: parse options, call ``report``, print ``render``'s output."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from satcli.errors import SatcliError
from satcli.models import LoadedModel, load_model, parse_arch_kwargs
from satcli.weights.chain import InputShapeNeeded, parse_shape
from satcli.weights.esd import eigenvalues
from satcli.weights.matrices import SVR_METHODS, layer_weights


class Format(str, Enum):
    table = "table"
    json = "json"


class Method(str, Enum):
    svr = "svr"
    cosvr = "cosvr"


assert tuple(m.value for m in Method) == SVR_METHODS

Model = Annotated[
    Path, typer.Argument(help="Model file: .pt2, TorchScript, state dict or .safetensors.", show_default=False)
]
Arch = Annotated[
    str | None, typer.Option(help="Architecture for state dicts: torchvision:NAME or package.module:factory.")
]
ArchKwargs = Annotated[
    list[str] | None, typer.Option("--arch-kwargs", help="KEY=VALUE for --arch (repeatable, or comma-separated).")
]
TrustPickle = Annotated[bool, typer.Option(help="Allow loading a whole pickled nn.Module (runs code from the file).")]
OutFormat = Annotated[Format, typer.Option("--format", help="table | json.")]
Plot = Annotated[Path | None, typer.Option(help="Also save a figure to this file (.png, .pdf, .svg).")]


def _load(model: Path, arch: str | None, arch_kwargs: list[str] | None, trust_pickle: bool) -> LoadedModel:
    parts = [p for item in arch_kwargs or [] for p in item.split(",") if p.strip()]
    return load_model(model, arch=arch, arch_kwargs=parse_arch_kwargs(parts), trust_pickle=trust_pickle, device="cpu")


def _print(renderable: object) -> None:
    Console(soft_wrap=False, highlight=False).print(renderable)


def svr_command(
    model: Model,
    sigma: Annotated[float, typer.Option(help="Significance of an edge in sigma (p = 1 - Phi(sigma)).")] = 3.0,
    max_modes: Annotated[int, typer.Option(help="Spectral neurons per layer (top singular values).")] = 128,
    method: Annotated[Method, typer.Option(help="svr | cosvr (kernel positions on the output side).")] = Method.svr,
    fold_bn: Annotated[bool, typer.Option(help="Fold a BatchNorm right after a layer into its rows.")] = True,
    input_shape: Annotated[
        str | None, typer.Option(help="Per-sample input shape C,H,W for the one forward pass that orders layers.")
    ] = None,
    output_format: OutFormat = Format.table,
    graphml: Annotated[Path | None, typer.Option(help="Write the graph of significant edges as GraphML.")] = None,
    plot: Plot = None,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
    trust_pickle: TrustPickle = False,
) -> None:
    """Singular Value Representation: significant links between spectral neurons of consecutive layers."""
    from satcli.weights.graphml import write_graphml
    from satcli.weights.plots import plot_svr
    from satcli.weights.render import svr_json, svr_table
    from satcli.weights.report import svr_report

    loaded = _load(model, arch, arch_kwargs, trust_pickle)
    shape = parse_shape(input_shape) if input_shape else None
    try:
        report = svr_report(
            loaded.module, input_shape=shape, method=method.value, sigma=sigma, max_modes=max_modes, fold_bn=fold_bn
        )
    except InputShapeNeeded as exc:
        raise SatcliError(f"{exc}; pass --input-shape C,H,W (e.g. 1,8,8)") from None
    if graphml is not None:
        write_graphml(report, graphml)
    if plot is not None:
        plot_svr(report, plot)
    if output_format is Format.json:
        typer.echo(json.dumps(svr_json(report, str(model), loaded.format), indent=2))
    else:
        _print(svr_table(report, str(model), loaded.format))


def weights_command(
    model: Model,
    output_format: OutFormat = Format.table,
    plot: Plot = None,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
    trust_pickle: TrustPickle = False,
) -> None:
    """Weight spectra per layer: norms, stable rank and WeightWatcher's power-law alpha with its reading."""
    from satcli.weights.plots import plot_esd
    from satcli.weights.render import weights_json, weights_table
    from satcli.weights.report import weights_report

    loaded = _load(model, arch, arch_kwargs, trust_pickle)
    found = weights_report(loaded.module)
    if plot is not None:
        weights = layer_weights(loaded.module)
        plot_esd([(s, eigenvalues(weights[s.name].weight)) for s in found], plot)
    if output_format is Format.json:
        typer.echo(json.dumps(weights_json(found, str(model), loaded.format), indent=2))
    else:
        _print(weights_table(found, str(model), loaded.format))


def register(app: typer.Typer) -> None:
    """Add the ``svr`` and ``weights`` commands to the satcli app."""
    app.command("svr")(svr_command)
    app.command("weights")(weights_command)
