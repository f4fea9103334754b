"""`satcli layers`: the trackable layers of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from satcli.cli.analyze import CLI_SCRIPT_FIX
from satcli.cli.app import app
from satcli.cli.console import stdout_console
from satcli.cli.options import (
    Arch,
    ArchKwargs,
    DataRoot,
    Device,
    Exclude,
    ImageSize,
    Layers,
    Split,
    TrustPickle,
    arch_kwargs_dict,
    data_options,
)
from satcli.errors import SatcliError


@app.command("layers")
def layers_command(
    model: Annotated[Path, typer.Argument(help="Model file.", show_default=False)],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Run one batch of this data to get forward order and widths.")
    ] = None,
    data_root: DataRoot = None,
    split: Split = "test",
    image_size: ImageSize = None,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
    trust_pickle: TrustPickle = False,
    device: Device = "auto",
    layers: Layers = None,
    exclude: Exclude = None,
) -> None:
    """List the trackable layers of a model: name, type, output width, forward order."""
    import torch

    # Heavy modules (torch) load here, not at start-up: --version and --help must stay fast.
    from satcli.data import open_data
    from satcli.models import load_model
    from satcli.taps import discover, open_taps, select
    from satcli.taps.untracked import Untracked, untracked

    loaded = load_model(
        model, arch=arch, arch_kwargs=arch_kwargs_dict(arch_kwargs), trust_pickle=trust_pickle, device=device
    )
    include, leave_out = tuple(layers or ()), tuple(exclude or ())
    missing: list[Untracked] = []
    if data is None:
        found = select(discover(loaded.module), include, leave_out)
        if isinstance(loaded.module, torch.jit.ScriptModule):  # what a graph cannot tap is known without running it
            missing = untracked(loaded.module, [layer.name for layer in found], include, leave_out)
        order_note = (
            "graph order"
            if loaded.format in ("export", "torchscript") and loaded.arch is None
            else ("registration order; pass --data for forward order")
        )
    else:
        source = open_data(data, data_options(data_root, False, split, 8, 8, 0, image_size, 0))
        x, _ = next(iter(source.batches()))
        with open_taps(loaded.module, include, leave_out) as taps:
            taps.forward(x.to(loaded.device))
            found = taps.layers
            missing = taps.untracked
        order_note = "forward order"
    if not found:
        raise SatcliError("no trackable layers (Conv1d/2d/3d, Linear, LSTM, GRU) match")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "layer", "type", "width"):
        table.add_column(column, justify="right" if column in ("#", "width") else "left")
    for i, layer in enumerate(found):
        table.add_row(str(i + 1), layer.name, layer.type, "?" if layer.width is None else str(layer.width))
    out = stdout_console(highlight=False)
    out.print(f"{model} ({loaded.format}): {len(found)} trackable layers, {order_note}", soft_wrap=True)
    out.print(table)
    groups: dict[tuple[str, str], list[str]] = {}
    for layer in missing:
        groups.setdefault((layer.reason, layer.fix), []).append(f"{layer.name} ({layer.type})")
    for (reason, fix), names in groups.items():
        out.print(f"untracked (not measured): {', '.join(names)}", soft_wrap=True)
        out.print(f"  why: {reason}", soft_wrap=True)
        out.print(f"  fix: {_cli_fix(fix)}", soft_wrap=True)


def _cli_fix(fix: str) -> str:
    """The fix in command-line words."""
    from satcli.taps.untracked import SCRIPT_FIX

    return CLI_SCRIPT_FIX if fix == SCRIPT_FIX else fix
