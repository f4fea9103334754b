"""`satcli project`: the eigenspace projection check (docs/method.md sec. 3) on one model."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.groups import DataArgs, ModelArgs, with_groups
from satcli.cli.options import (
    CheckFormat,
    EvalData,
    EvalSplit,
    Exclude,
    Layers,
    ModelArgument,
    ObjectFormat,
    Quiet,
    with_model_preprocessors,
)

if TYPE_CHECKING:
    from satcli.data import DataSource


@app.command("project")
@with_groups
def project_command(
    model: ModelArgument,
    *,
    data: DataArgs,
    eval_data: EvalData = None,
    eval_split: EvalSplit = None,
    delta: Annotated[
        list[float] | None,
        typer.Option(
            "--delta",
            help="Share of variance the kept eigen-directions explain (repeatable; default: 0.9, 0.99, 0.999).",
        ),
    ] = None,
    model_args: ModelArgs,
    layers: Layers = None,
    exclude: Exclude = None,
    output_format: ObjectFormat = CheckFormat.table,
    plot: Annotated[Path | None, typer.Option(help="Also draw accuracy against delta to this image.")] = None,
    quiet: Quiet = False,
) -> None:
    """Project layer outputs onto their top eigenspaces and measure accuracy and output change.

    Fits each tracked layer's subspace on --data (convolutions per position, sequences per
    real token), then evaluates on --eval-data the unmodified model, each layer projected
    alone and all non-output layers projected at once, for each --delta.
    """
    from satcli.core.projection import DEFAULT_DELTAS
    from satcli.data import open_data
    from satcli.engine.project import ProjectionOptions, project
    from satcli.models import resolve_device
    from satcli.render.plot import check_image_path
    from satcli.render.projection import plot_projection, projection_json, render_projection

    options = ProjectionOptions(tuple(delta or DEFAULT_DELTAS), tuple(layers or ()), tuple(exclude or ()))
    if plot is not None:
        check_image_path(plot)

    # A model directory's tokenizer / image processor, loaded once for both data sets.
    fit_options = with_model_preprocessors(data.options(model_args.trust_remote_code), model)
    fit = open_data(data.data, fit_options)
    evaluate = None
    if eval_data is not None or (eval_split is not None and eval_split != data.split):
        evaluate = open_data(eval_data or data.data, replace(fit_options, split=eval_split or data.split))
    loaded = model_args.loader(resolve_device(model_args.device), data.download)(model)
    with _progress(quiet, fit, evaluate or fit) as advance:
        report = project(loaded, fit, evaluate, options, advance)
    if output_format is CheckFormat.json:
        sys.stdout.write(projection_json(report) + "\n")
        sys.stdout.flush()
    else:
        render_projection(report, stdout_console())
    if plot is not None:
        typer.echo(f"wrote {plot_projection(report, plot)}", err=True)


@contextlib.contextmanager
def _progress(quiet: bool, fit: DataSource, evaluate: DataSource) -> Iterator[Callable[[str, int], None]]:
    """A transient progress bar on stderr for the fit pass and the evaluation passes (off when not a terminal)."""
    from satcli.render.progress import make_progress

    progress = make_progress(stderr_console())
    progress.disable = quiet or not progress.console.is_terminal
    with progress:
        tasks = {
            "fit": progress.add_task("fit", total=fit.num_samples),
            "evaluate": progress.add_task("evaluate", total=evaluate.num_samples),
        }
        yield lambda stage, count: progress.advance(tasks[stage], count)
