"""`satcli analyze`: score checkpoints on a data set, print them as they finish, write the store."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from satcli.cli.app import EXIT_USAGE, app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.options import (
    ActivationsDtype,
    Arch,
    ArchKwargs,
    BatchSize,
    Classes,
    ConvMethod,
    ConvMethodOption,
    Data,
    DataRoot,
    Device,
    Download,
    Exclude,
    ImageSize,
    Layers,
    MaxSamples,
    MaxTail,
    OutputFormat,
    Quiet,
    Seed,
    SequenceMethod,
    SequenceMethodOption,
    Shard,
    Split,
    TailThreshold,
    Threshold,
    TrustPickle,
    UnderThreshold,
    Workers,
    arch_kwargs_dict,
    data_options,
)
from satcli.core.results import CheckpointResult
from satcli.core.verdict import ThresholdOverrides, Thresholds
from satcli.data import open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.sweep import Failure, order_checkpoints, score_checkpoints
from satcli.errors import SatcliError
from satcli.models import load_model, resolve_device
from satcli.render.progress import make_progress
from satcli.render.serialize import csv_header, csv_rows, result_json
from satcli.render.table import render_result
from satcli.render.trajectory import render_trajectory
from satcli.store.safety import check_store_target
from satcli.taps import Reduction


@app.command("analyze")
def analyze_command(
    models: Annotated[
        list[Path],
        typer.Argument(help="Model files: .pt2, TorchScript, state dict (.pt/.pth/.safetensors).", show_default=False),
    ],
    data: Data = "digits",
    data_root: DataRoot = None,
    download: Download = False,
    split: Split = "test",
    max_samples: MaxSamples = None,
    batch_size: BatchSize = 256,
    workers: Workers = 0,
    image_size: ImageSize = None,
    seed: Seed = 0,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
    trust_pickle: TrustPickle = False,
    device: Device = "auto",
    layers: Layers = None,
    exclude: Exclude = None,
    conv_method: ConvMethodOption = ConvMethod.mean,
    sequence_method: SequenceMethodOption = SequenceMethod.mean,
    classes: Classes = None,
    threshold: Threshold = None,
    tail_threshold: TailThreshold = None,
    max_tail: MaxTail = None,
    under_threshold: UnderThreshold = None,
    store: Annotated[
        Path | None, typer.Option(help="HDF5 store to write [default: MODEL.satcli.h5 next to each model].")
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Write no HDF5 store.")] = False,
    no_activations: Annotated[
        bool, typer.Option("--no-activations", help="Store covariances only, not per-input activations.")
    ] = False,
    activations_dtype: Annotated[
        ActivationsDtype, typer.Option(help="dtype of stored activations.")
    ] = ActivationsDtype.float32,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="table on the terminal; jsonl (one JSON object per checkpoint and line; json: the same) "
            "or csv (one row per checkpoint and layer) on stdout.",
        ),
    ] = OutputFormat.table,
    trajectory: Annotated[
        bool,
        typer.Option(
            "--trajectory",
            help="Print only a layers x checkpoints table of saturation (table format). Without it, several "
            "checkpoints get that table after their own tables.",
        ),
    ] = False,
    no_sort: Annotated[
        bool,
        typer.Option("--no-sort", help="Score in the order given, not in natural order (epoch_2 before epoch_10)."),
    ] = False,
    quiet: Quiet = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file at the store path that is not a satcli store.")
    ] = False,
    shard: Shard = None,
) -> None:
    """Score checkpoints: per-layer k and saturation, average saturation and a verdict.

    Several checkpoints share one decoded data set and print as each finishes; one that fails is reported on
    stderr and skipped, and the exit code is then 2.
    """
    if trajectory and output_format is not OutputFormat.table:
        raise SatcliError("--trajectory prints a table; leave out --format or --trajectory")
    options = AnalysisOptions(
        reduction=Reduction(conv_method.value, sequence_method.value),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        thresholds=ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold).apply(Thresholds()),
        store_activations=not no_activations,
        activations_dtype=activations_dtype.value,
        classes=classes,
    )
    source = open_data(
        data, data_options(data_root, download, split, max_samples, batch_size, workers, image_size, seed)
    )
    from satcli.cli.split import split_run
    from satcli.engine.distributed import launched_ranks, local_device

    run_device = local_device(resolve_device(device)) if launched_ranks() else resolve_device(device)
    load = partial(
        load_model,
        arch=arch,
        arch_kwargs=arch_kwargs_dict(arch_kwargs),
        trust_pickle=trust_pickle,
        device=run_device,
    )
    paths = order_checkpoints(models, sort=not no_sort)
    store_for = (lambda path: None) if no_store else (lambda path: store or default_store_path(path))
    _check_store_targets(paths, data, store_for, force)
    out = stdout_console()
    err = stderr_console()
    results: list[CheckpointResult] = []
    failed = 0
    with split_run(shard, source, run_device) as part:
        track = partial(progress_bar, err, quiet) if part.rank == 0 else None
        targets = store_for if part.rank == 0 else (lambda path: None)  # only rank 0 opens (and locks) stores
        for outcome in score_checkpoints(paths, part.source, options, load, targets, track, score=part.score):
            if part.rank != 0:
                continue  # under torchrun only rank 0 prints and writes
            if isinstance(outcome, Failure):
                failed += 1
                message = escape(f"{outcome.path}: {outcome.reason}")
                err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
                continue
            results.append(outcome)
            _write_result(outcome, output_format, out, first=len(results) == 1, table=not trajectory)
    if part.rank != 0:
        return
    if output_format is OutputFormat.table and results and (trajectory or len(results) > 1):
        if not trajectory:
            out.print()
        render_trajectory(results, out)
    if failed:
        if len(paths) > 1:
            err.print(f"{failed} of {len(paths)} checkpoints failed", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_USAGE)


def _check_store_targets(
    paths: list[Path], data: str, store_for: Callable[[Path], Path | None], force: bool
) -> None:
    """Refuse, before anything is scored, every store path that would replace an input or a foreign file."""
    data_path = Path(data).expanduser()
    inputs = [*paths, *([data_path] if data_path.is_file() else [])]
    for target in dict.fromkeys(t for t in map(store_for, paths) if t is not None):
        try:
            check_store_target(target, inputs, replace_foreign=force)
        except SatcliError as exc:
            raise SatcliError(str(exc).replace("(force to overwrite it)", "(pass --force to overwrite it)")) from None


def _write_result(
    result: CheckpointResult, output_format: OutputFormat, out: Console, *, first: bool, table: bool
) -> None:
    """Print one finished checkpoint and flush, so a long run can be followed and a killed one keeps its lines."""
    if output_format is OutputFormat.table:
        if table:
            if not first:
                out.print()
            render_result(result, out)
    elif output_format is OutputFormat.csv:
        sys.stdout.write((csv_header() if first else "") + csv_rows(result))
    else:
        sys.stdout.write(result_json(result) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(err: Console, quiet: bool, path: Path, total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr for one checkpoint; yields the per-batch callback.

    Off when stderr is not a terminal: there it could only leave a blank line per checkpoint in the log.
    """
    progress = make_progress(err)
    progress.disable = quiet or not err.is_terminal
    with progress:
        task = progress.add_task(path.name, total=total)
        yield partial(progress.advance, task)


def default_store_path(model: Path) -> Path:
    """MODEL.satcli.h5 next to the model."""
    return model.with_name(model.name + ".satcli.h5")
