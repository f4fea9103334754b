"""`satcli analyze`: score checkpoints on a data set, print them as they finish, write the store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from satcli.cli.app import EXIT_USAGE, app
from satcli.cli.console import stderr_console, stdout_console, with_flags
from satcli.cli.feedback import budget_bytes, progress_bar, tell_plan, warn_notes
from satcli.cli.groups import AnalysisArgs, DataArgs, LayerArgs, ModelArgs, ThresholdArgs, with_groups
from satcli.cli.options import (
    ActivationsDtype,
    AnalyzeFormat,
    Columns,
    EvalData,
    EvalSplit,
    MemoryBudget,
    NoSort,
    OutputFormat,
    Quiet,
    Shard,
    SplitOption,
    Trajectory,
    Wait,
    with_model_preprocessors,
)
from satcli.cli.sweep import border_note, sweep
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult


@dataclass
class StoreArgs:
    """Where analyze writes its store, and what it keeps there."""

    store: Annotated[
        Path | None, typer.Option(help="HDF5 store to write [default: MODEL.satcli.h5 next to each model].")
    ] = None
    no_store: Annotated[bool, typer.Option("--no-store", help="Write no HDF5 store.")] = False
    activations: Annotated[
        bool,
        typer.Option(
            "--activations",
            help="Also store each input's pooled activations (for projections, plots); off by default: for "
            "a transformer they outweigh everything else in the store.",
        ),
    ] = False
    # The default since stores keep no activations unless asked; still accepted so old scripts run.
    no_activations: Annotated[bool, typer.Option("--no-activations", hidden=True)] = False
    keep_moments: Annotated[
        bool,
        typer.Option(
            "--keep-moments",
            help="Keep each layer's d x d second moment (m2) in the store, for satcli merge and projections; "
            "re-scoring needs only the eigenvalues, the default keeps those.",
        ),
    ] = False
    activations_dtype: Annotated[ActivationsDtype, typer.Option(help="dtype of stored activations.")] = (
        ActivationsDtype.float32
    )
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing file at the store path: one that is not a satcli store, or a store holding "
            "checkpoints another run wrote (other models, another command, a Monitor).",
        ),
    ] = False
    append: Annotated[
        bool, typer.Option("--append", help="Add the checkpoints to an existing store instead of replacing it.")
    ] = False
    wait: Wait = False

    def target_for(self, model: Path) -> Path | None:
        """The store a model's checkpoint goes to (None: no store)."""
        return None if self.no_store else (self.store or default_store_path(model))


@app.command("analyze")
@with_groups
def analyze_command(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="Model files (.pt2, TorchScript, state dict .pt/.pth/.safetensors), Hugging Face model "
            "directories, hf:PATH or hf:ORG/NAME (from the local Hugging Face cache).",
            metavar="MODEL",
            show_default=False,
        ),
    ],
    *,
    data: DataArgs,
    eval_data: EvalData = None,
    eval_split: EvalSplit = None,
    model: ModelArgs,
    layer: LayerArgs,
    analyses: AnalysisArgs,
    thresholds: ThresholdArgs,
    storing: StoreArgs,
    output_format: AnalyzeFormat = OutputFormat.table,
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report (table, verdict, plots)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            help="With --input-size: also draw saturation against layer, one line per size, to this image.",
        ),
    ] = None,
    trajectory: Trajectory = False,
    no_sort: NoSort = False,
    quiet: Quiet = False,
    shard: Shard = None,
    columns: Columns = None,
    input_size: Annotated[
        list[str] | None,
        typer.Option(
            "--input-size",
            help="Resize the images to S or HxW before the model and score at each size given (a resolution "
            "sweep of one checkpoint; no store is written).",
            show_default=False,
        ),
    ] = None,
    split_by: SplitOption = "data",
    memory_budget: MemoryBudget = None,
) -> None:
    """Score checkpoints: per-layer k and saturation, average saturation and a verdict.

    Several checkpoints share one decoded data set and print as each finishes; one that fails is reported on
    stderr and skipped, and the exit code is then 2.
    """
    from satcli.cli.options import eval_source
    from satcli.data import open_data
    from satcli.engine.distributed import launched_ranks, local_device
    from satcli.engine.resolution import BorderNotes
    from satcli.engine.sweep import order_checkpoints
    from satcli.models import resolve_device
    from satcli.render.output import check_output_dir

    if html is not None:
        check_output_dir(html)
    if trajectory and output_format is not OutputFormat.table:
        raise SatcliError("--trajectory prints a table; leave out --format or --trajectory")
    if storing.activations and storing.no_activations:
        raise SatcliError("--activations and --no-activations contradict each other; give one of them")
    if storing.store is not None and storing.no_store:
        raise SatcliError(f"--store {storing.store} and --no-store contradict each other; give one of them")
    options = layer.analysis_options(
        thresholds=thresholds.thresholds(),
        store_activations=storing.activations,
        keep_moments=storing.keep_moments,
        activations_dtype=storing.activations_dtype.value,
        **analyses.switches(),
    )
    if input_size:
        if html is not None:
            raise SatcliError("--input-size prints a layers x sizes table; --html reports stored runs, leave it out")
        sweep(models, input_size, data, model, options, storing.store, output_format, plot)
        return
    if plot is not None:
        raise SatcliError("--plot draws the resolution sweep; give --input-size, or use satcli plot STORE")
    paths = order_checkpoints(models, sort=not no_sort)
    store_for = storing.target_for
    _check_store_option(storing.store)
    if storing.append and storing.force:
        raise SatcliError("--append adds to a store and --force replaces it; give one of them")
    _check_store_targets(paths, data.data, store_for, storing.force, storing.append)
    # Data are prepared once for every checkpoint: with the first one's tokenizer / image processor.
    data_opts = with_model_preprocessors(data.options(model.trust_remote_code), paths[0])
    source = open_data(data.data, data_opts)
    evaluation = eval_source(eval_data, eval_split, data.data, data.split, data_opts)
    if evaluation is not None:
        options = replace(options, eval_data=evaluation)
    run_device = local_device(resolve_device(model.device)) if launched_ranks() else resolve_device(model.device)
    borders = BorderNotes(model.loader(run_device, data.download), source)
    run = _Run(paths, options, borders, store_for, quiet, storing.wait, storing.append, tuple(columns or ()))
    run.budget = budget_bytes(memory_budget)
    run.split = split_by
    results, failed = run.score(source, shard, run_device, output_format, trajectory)
    if results is None:
        return  # a torchrun rank other than 0: quiet
    if html is not None and results:
        _write_html(results, html)
    if failed:
        if len(paths) > 1:
            stderr_console().print(f"{failed} of {len(paths)} checkpoints failed", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_USAGE)


@dataclass
class _Run:
    """One analyze run over its checkpoints: prints each result as it finishes."""

    paths: list[Path]
    options: Any
    load: Callable[[Path], Any]
    store_for: Callable[[Path], Path | None]
    quiet: bool
    wait: bool
    append: bool = False
    columns: tuple[str, ...] = ()
    budget: int | None = None
    split: str = "data"

    def score(
        self, source: Any, shard: str | None, device: Any, output_format: OutputFormat, trajectory: bool
    ) -> tuple[list[CheckpointResult] | None, int]:
        """(results, failures), or (None, 0) on a torchrun rank other than 0 (it prints and writes nothing)."""
        from satcli.engine.split import split_run
        from satcli.engine.sweep import Failure, score_checkpoints
        from satcli.render.trajectory import render_trajectory

        out, err = stdout_console(), stderr_console()
        results: list[CheckpointResult] = []
        failed = 0
        # -f json with several checkpoints is one document, printed once all are scored.
        gathered = output_format is OutputFormat.json and len(self.paths) > 1
        tell = partial(tell_plan, err, self.quiet)
        with split_run(shard, source, device, split=self.split, budget=self.budget, tell=tell) as part:
            track = partial(progress_bar, err, self.quiet) if part.rank == 0 else None
            # Under torchrun only rank 0 writes (and locks) the store.
            targets = self.store_for if part.rank == 0 else (lambda path: None)
            outcomes = score_checkpoints(
                self.paths,
                part.source,
                self.options,
                self.load,
                targets,
                track,
                wait=self.wait,
                score=part.score,
                append=self.append,
            )
            for outcome in outcomes:
                if part.rank != 0:
                    continue
                if isinstance(outcome, Failure):
                    failed += 1
                    message = escape(with_flags(f"{outcome.path}: {outcome.reason}"))
                    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
                    continue
                results.append(outcome)
                warn_notes(outcome, err)
                if not gathered:
                    table = not trajectory
                    _write_result(
                        outcome, output_format, out, first=len(results) == 1, table=table, columns=self.columns
                    )
                    if output_format is OutputFormat.table and not trajectory:
                        border_note(outcome, self.load, out)
        if part.rank != 0:
            return None, 0
        if gathered and results:
            from satcli.render.serialize import results_json

            sys.stdout.write(results_json(results) + "\n")
            sys.stdout.flush()
        if output_format is OutputFormat.table and results and (trajectory or len(results) > 1):
            if not trajectory:
                out.print()
            render_trajectory(results, out)
        return results, failed


def _write_html(results: list[CheckpointResult], output: Path) -> None:
    """The finished checkpoints as one HTML page (the same page as `satcli report -f html`)."""
    from satcli.render.html import html_report
    from satcli.render.output import write_text

    write_text(output, html_report(results))


def _check_store_option(store: Path | None) -> None:
    """Refuse --store STORE.h5:NNNN: that names a checkpoint of a store (for report and plot), not a file to write."""
    from satcli.store.rescore import parse_store_ref

    ref = None if store is None else parse_store_ref(str(store))
    if ref is not None and ref.key is not None:
        raise SatcliError(
            f"--store {store}: STORE:{ref.key} names a checkpoint of a store (for report and plot), not a file "
            f"to write; give the store file, e.g. --store {ref.path}"
        )


def _check_store_targets(
    paths: list[Path], data: str, store_for: Callable[[Path], Path | None], force: bool, append: bool = False
) -> None:
    """Refuse, before anything is scored, every store path that would replace an input, a foreign file, or a
    store holding checkpoints this command on these models did not write (unless --force or --append)."""
    from satcli.store.safety import check_store_target, is_satcli_store, others_checkpoints

    data_path = Path(data).expanduser()
    inputs = [*paths, *([data_path] if data_path.is_file() else [])]
    for target in dict.fromkeys(t for t in map(store_for, paths) if t is not None):
        try:
            check_store_target(target, inputs, replace_foreign=force)
        except SatcliError as exc:
            raise SatcliError(str(exc).replace("(force to overwrite it)", "(pass --force to overwrite it)")) from None
        if force or append or not target.exists() or not is_satcli_store(target):
            continue
        mine = [p for p in paths if store_for(p) == target]
        others = others_checkpoints(target, "analyze", mine)
        if others:
            named = list(dict.fromkeys(others))
            shown = ", ".join(named[:3]) + (", ..." if len(named) > 3 else "")
            raise SatcliError(
                f"refusing to replace {target}: it holds {len(others)} checkpoint(s) this run did not write "
                f"({shown}); pass --append to add to it or --force to replace it"
            )


def _write_result(
    result: CheckpointResult,
    output_format: OutputFormat,
    out: Console,
    *,
    first: bool,
    table: bool,
    columns: tuple[str, ...] = (),
) -> None:
    """Print one finished checkpoint and flush, so a long run can be followed and a killed one keeps its lines."""
    from satcli.render.serialize import csv_header, csv_rows, result_json
    from satcli.render.table import render_result

    if output_format is OutputFormat.table:
        if table:
            if not first:
                out.print()
            render_result(result, out, columns)
    elif output_format is OutputFormat.csv:
        sys.stdout.write((csv_header() if first else "") + csv_rows(result))
    else:
        sys.stdout.write(result_json(result) + "\n")
    sys.stdout.flush()


def default_store_path(model: Path) -> Path:
    """MODEL.satcli.h5 next to the model; ORG--NAME.satcli.h5 here for a model from the hub cache."""
    text = str(model)
    if text.startswith("hf:"):
        target = text[len("hf:") :].strip()
        if not Path(target).expanduser().exists():
            return Path(target.replace("/", "--") + ".satcli.h5")
        model = Path(target).expanduser()
    return model.with_name(model.name + ".satcli.h5")
