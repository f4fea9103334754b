"""`satcli analyze --input-size`: the resolution sweep of one checkpoint, and the receptive-field border note that
analyze prints under each checkpoint's table (docs/method.md, "Receptive field and input resolution")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from satcli.cli.console import stdout_console
from satcli.cli.options import OutputFormat, with_model_preprocessors
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.cli.groups import DataArgs, ModelArgs
    from satcli.core.results import CheckpointResult


def border_note(result: CheckpointResult, load: Any, out: Console) -> None:
    """Which tail layers are also past the receptive-field border at the data's size (spatial models only)."""
    from satcli.render.rf import border_note as note_text

    found = load.at(result.model) if hasattr(load, "at") else None
    if found is None:
        return
    _, borders = found
    if borders.report is not None:
        note = note_text(borders.report, borders.report.sizes[0], result.verdict.tail)
        if note:
            out.print(f"receptive field: {escape(note)}", soft_wrap=True, highlight=False)
    elif borders.problem:
        out.print(f"receptive field: {escape(borders.problem)}", soft_wrap=True, highlight=False)


def check_sweep(models: list[Path], store: Path | None, output_format: OutputFormat, plot: Path | None) -> None:
    """Refuse, before any work, what a sweep cannot do: several models, a store, CSV, an unwritable --plot."""
    from satcli.render.plot import check_image_path

    if len(models) != 1:
        raise SatcliError("--input-size sweeps one checkpoint; give one MODEL")
    if store is not None:
        raise SatcliError("--input-size writes no store; leave out --store")
    if output_format is OutputFormat.csv:
        raise SatcliError("--input-size prints a table or JSON; use --format table or json")
    if plot is not None:
        check_image_path(plot)


def sweep(
    models: list[Path],
    sizes: list[str],
    data: DataArgs,
    model: ModelArgs,
    options: Any,
    store: Path | None,
    output_format: OutputFormat,
    plot: Path | None = None,
) -> None:
    """The resolution sweep: one checkpoint scored at every --input-size, as a layers x sizes table or JSON, and
    saturation against layer per size to `plot`."""
    from satcli.data import open_data
    from satcli.engine.resolution import resolution_sweep
    from satcli.models import resolve_device
    from satcli.render.resolution import plot_sweep, sweep_json, sweep_table
    from satcli.render.text import print_fitted
    from satcli.rf.report import parse_size

    check_sweep(models, store, output_format, plot)
    parsed = [parse_size(text) for text in sizes]
    if any(len(size) > 2 for size in parsed):
        raise SatcliError("--input-size takes S or HxW for image inputs")
    source = open_data(data.data, with_model_preprocessors(data.options(model.trust_remote_code), models[0]))
    load = model.loader(resolve_device(model.device), data.download)
    results, found = resolution_sweep(models[0], source, parsed, options, load)
    if output_format is OutputFormat.json:
        sys.stdout.write(sweep_json(results))
        sys.stdout.flush()
    else:
        print_fitted(stdout_console(highlight=False), sweep_table(str(models[0]), results, found))
    if plot is not None:
        typer.echo(f"wrote {plot_sweep(str(models[0]), results, plot)}", err=True)
