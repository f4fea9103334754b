"""`satcli layers`: the trackable layers of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from satcli.cli.app import app
from satcli.cli.console import stdout_console, with_flags
from satcli.cli.groups import ModelArgs, with_groups
from satcli.cli.options import (
    DataRoot,
    Download,
    Exclude,
    ImageSize,
    InputColumn,
    LabelColumn,
    Layers,
    MaxLength,
    Split,
    TextOptions,
    Tokenizer,
    data_options,
    with_model_preprocessors,
)


@app.command("layers")
@with_groups
def layers_command(
    *,
    model: Annotated[
        str,
        typer.Argument(
            help="Model file, Hugging Face model directory, hf:PATH or hf:ORG/NAME.",
            metavar="MODEL",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Run one batch of this data to get forward order and widths.")
    ] = None,
    data_root: DataRoot = None,
    download: Download = False,
    split: Split = "test",
    image_size: ImageSize = None,
    input_column: InputColumn = None,
    label_column: LabelColumn = None,
    tokenizer: Tokenizer = None,
    max_length: MaxLength = None,
    loading: ModelArgs,
    layers: Layers = None,
    exclude: Exclude = None,
) -> None:
    """List the trackable layers of a model: name, type, output width, forward order."""
    import torch

    from satcli.data import open_data
    from satcli.engine.run import on_device
    from satcli.taps import chosen_layers, open_taps
    from satcli.taps.untracked import Untracked, untracked

    spec = model if model.startswith("hf:") else Path(model)
    loaded = loading.loader(download=download)(spec)
    include, leave_out = tuple(layers or ()), tuple(exclude or ())
    missing: list[Untracked] = []
    if data is None:
        _, found = chosen_layers(loaded.module, include, leave_out)
        if isinstance(loaded.module, torch.jit.ScriptModule):  # what a graph cannot tap is known without running it
            missing = untracked(loaded.module, [layer.name for layer in found], include, leave_out)
        order_note = (
            "graph order"
            if loaded.format in ("export", "torchscript") and loaded.arch is None
            else ("registration order; pass --data for forward order")
        )
    else:
        text = TextOptions(input_column, label_column, tokenizer, max_length, loading.trust_remote_code)
        options = data_options(data_root, download, split, 8, 8, 0, image_size, 0, text=text)
        source = open_data(data, with_model_preprocessors(options, spec))
        batch = on_device(next(iter(source.iter_batches())), loaded.device)
        with open_taps(loaded.module, include, leave_out) as taps:
            taps.forward(batch.inputs)
            found = taps.layers
            missing = taps.untracked
        order_note = "forward order"
    _print_layers(f"{model} ({loaded.format}): {len(found)} trackable layers, {order_note}", found, missing)


def _print_layers(title: str, found: list[Any], missing: list[Any]) -> None:
    """The layer table, then the untracked layers grouped by reason and fix."""
    from satcli.render.notes import grouped_untracked
    from satcli.render.text import DottedName, Fit, fitted, least_width, natural_width

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "layer", "type", "width"):
        table.add_column(column, justify="right" if column in ("#", "width") else "left", no_wrap=column != "layer")
    for i, layer in enumerate(found):
        row = (str(i + 1), DottedName(layer.name), layer.type, "?" if layer.width is None else str(layer.width))
        table.add_row(*row)
    out = stdout_console(highlight=False)
    out.print(title, soft_wrap=True)
    fit = Fit(table)
    with fitted(out, natural_width(out, fit), least_width(out, fit)):
        out.print(fit)
    for (reason, fix), names in grouped_untracked(layer.to_dict() for layer in missing).items():
        out.print(f"untracked (not measured): {', '.join(names)}", soft_wrap=True)
        out.print(f"  why: {reason}", soft_wrap=True)
        out.print(f"  fix: {with_flags(fix)}", soft_wrap=True)
