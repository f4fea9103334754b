"""The command line: thin Typer commands that parse options, call the pipeline and print.

Domain code raises ``SatcliError``; ``main`` maps it (and usage errors) to one line on stderr and
exit code 2, so a user never sees a traceback for bad input.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from satcli import __version__, gates
from satcli.compare import compare, comparison_csv, comparison_json, comparison_table
from satcli.config import load_config
from satcli.data import DataOptions, DataSource, open_data
from satcli.errors import SatcliError
from satcli.models import LoadedModel, load_model, parse_arch_kwargs, resolve_device
from satcli.pipeline import AnalysisOptions, analyze
from satcli.plot import load_results, plot_results
from satcli.render import (
    csv_header,
    csv_rows,
    make_progress,
    render_result,
    render_trajectory,
    result_json,
    results_csv,
)
from satcli.report import (
    ThresholdOverrides,
    load_checkpoints,
    looks_like_store,
    parse_store_ref,
    rescore,
    resolve_thresholds,
)
from satcli.results import CheckpointResult
from satcli.store import check_store_target
from satcli.sweep import Failure, order_checkpoints, score_checkpoints
from satcli.taps import Reduction, discover, open_taps, select
from satcli.verdict import Thresholds

EXIT_USAGE = 2

app = typer.Typer(
    name="satcli",
    help="Per-layer intrinsic dimensionality and saturation of PyTorch checkpoints, with a verdict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    table = "table"
    jsonl = "jsonl"
    json = "json"  # the same as jsonl: one object per checkpoint and line
    csv = "csv"


class ConvMethod(str, Enum):
    mean = "mean"
    max = "max"
    channelwise = "channelwise"


class SequenceMethod(str, Enum):
    mean = "mean"
    last = "last"
    tokens = "tokens"


class ActivationsDtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"satcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """satcli: how much of each layer's width the data actually uses."""
    # [tool.satcli] in the nearest pyproject.toml becomes the commands' defaults (shown by --help).
    commands = getattr(ctx.command, "commands", {})
    params = {name: [p.name for p in command.params if p.name] for name, command in commands.items()}
    ctx.default_map = {**load_config().default_map(params), **(ctx.default_map or {})}


# Options shared by the commands that load a model and data.
Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="digits | cifar10 | cifar100 | mnist | fashion-mnist | svhn | folder:PATH | FILE.npz/.pt/.h5",
    ),
]
DataRoot = Annotated[
    Path | None,
    typer.Option(help="Where torchvision data sets live [default: $SATCLI_DATA_ROOT or ~/.cache/satcli/data]."),
]
Download = Annotated[bool, typer.Option(help="Download a torchvision data set if it is missing.")]
Split = Annotated[str, typer.Option(help="Data split: train | test (| extra for svhn, all for digits).")]
MaxSamples = Annotated[int | None, typer.Option(help="Use a fixed-seed random subset of this many inputs.")]
BatchSize = Annotated[int, typer.Option(help="Inputs per forward pass.")]
Workers = Annotated[int, typer.Option(help="DataLoader worker processes.")]
ImageSize = Annotated[int | None, typer.Option(help="Resize images to SIZE x SIZE before the model.")]
Seed = Annotated[int, typer.Option(help="Seed of the --max-samples subset.")]
Arch = Annotated[
    str | None, typer.Option(help="Architecture for state dicts: torchvision:NAME or package.module:factory.")
]
ArchKwargs = Annotated[
    list[str] | None, typer.Option("--arch-kwargs", help="KEY=VALUE for --arch (repeatable, or comma-separated).")
]
TrustPickle = Annotated[bool, typer.Option(help="Allow loading a whole pickled nn.Module (runs code from the file).")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N (auto = CUDA when available).")]
Layers = Annotated[list[str] | None, typer.Option("--layers", help="Glob of layer names to track (repeatable).")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="Glob of layer names to leave out (repeatable).")]


def _data_options(
    data_root: Path | None,
    download: bool,
    split: str,
    max_samples: int | None,
    batch_size: int,
    workers: int,
    image_size: int | None,
    seed: int,
) -> DataOptions:
    return DataOptions(
        root=data_root,
        download=download,
        split=split,
        max_samples=max_samples,
        batch_size=batch_size,
        workers=workers,
        image_size=image_size,
        seed=seed,
    )


def _arch_kwargs(items: list[str] | None) -> dict[str, object]:
    parts = [p for item in items or [] for p in item.split(",") if p.strip()]
    return parse_arch_kwargs(parts)


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
    conv_method: Annotated[ConvMethod, typer.Option(help="How a conv output becomes samples.")] = ConvMethod.mean,
    sequence_method: Annotated[
        SequenceMethod, typer.Option(help="How a (B, T, d) output becomes samples.")
    ] = SequenceMethod.mean,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="delta: share of variance the top-k directions explain.")
    ] = Thresholds.delta,
    tail_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="A layer with saturation below this can be in the tail.")
    ] = Thresholds.tail_threshold,
    max_tail: Annotated[
        int, typer.Option(min=0, help="Overparameterized when the tail is longer than this.")
    ] = Thresholds.max_tail,
    under_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Underparameterized when average saturation is at least this.")
    ] = Thresholds.under_threshold,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file at the store path that is not a satcli store.")
    ] = False,
) -> None:
    """Score checkpoints: per-layer k and saturation, average saturation and a verdict.

    Several checkpoints share one decoded data set and print as each finishes; one that fails is reported on
    stderr and skipped, and the exit code is then 2.
    """
    if threshold <= 0.0:
        raise SatcliError("--threshold must be in (0, 1]")
    if trajectory and output_format is not OutputFormat.table:
        raise SatcliError("--trajectory prints a table; leave out --format or --trajectory")
    options = AnalysisOptions(
        reduction=Reduction(conv_method.value, sequence_method.value),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        thresholds=Thresholds(threshold, tail_threshold, max_tail, under_threshold),
        store_activations=not no_activations,
        activations_dtype=activations_dtype.value,
    )
    source = open_data(
        data, _data_options(data_root, download, split, max_samples, batch_size, workers, image_size, seed)
    )
    load = partial(
        load_model,
        arch=arch,
        arch_kwargs=_arch_kwargs(arch_kwargs),
        trust_pickle=trust_pickle,
        device=resolve_device(device),
    )
    paths = order_checkpoints(models, sort=not no_sort)
    store_for = (lambda path: None) if no_store else (lambda path: store or default_store_path(path))
    _check_store_targets(paths, data, store_for, force)
    out = Console(soft_wrap=False)
    err = Console(stderr=True)
    results: list[CheckpointResult] = []
    failed = 0
    for outcome in score_checkpoints(
        paths,
        source,
        options,
        load,
        store_for,
        partial(_progress, err, quiet),
    ):
        if isinstance(outcome, Failure):
            failed += 1
            err.print(
                f"[bold red]error:[/] {escape(f'{outcome.path}: {outcome.reason}')}", soft_wrap=True, highlight=False
            )
            continue
        results.append(outcome)
        _write_result(outcome, output_format, out, first=len(results) == 1, table=not trajectory)
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
def _progress(err: Console, quiet: bool, path: Path, total: int) -> Iterator[Callable[[int], None]]:
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
    loaded = load_model(
        model, arch=arch, arch_kwargs=_arch_kwargs(arch_kwargs), trust_pickle=trust_pickle, device=device
    )
    include, leave_out = tuple(layers or ()), tuple(exclude or ())
    if data is None:
        found = select(discover(loaded.module), include, leave_out)
        order_note = (
            "graph order"
            if loaded.format in ("export", "torchscript") and loaded.arch is None
            else ("registration order; pass --data for forward order")
        )
    else:
        source = open_data(data, _data_options(data_root, False, split, 8, 8, 0, image_size, 0))
        x, _ = next(iter(source.batches()))
        with open_taps(loaded.module, include, leave_out) as taps:
            taps.forward(x.to(loaded.device))
            found = taps.layers
        order_note = "forward order"
    if not found:
        raise SatcliError("no trackable layers (Conv1d/2d/3d, Linear, LSTM, GRU) match")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "layer", "type", "width"):
        table.add_column(column, justify="right" if column in ("#", "width") else "left")
    for i, layer in enumerate(found):
        table.add_row(str(i + 1), layer.name, layer.type, "?" if layer.width is None else str(layer.width))
    out = Console(soft_wrap=False, highlight=False)
    out.print(f"{model} ({loaded.format}): {len(found)} trackable layers, {order_note}", soft_wrap=True)
    out.print(table)


# ---------------------------------------------------------------------------------------------------------
# Re-scoring, comparing and gating: report / compare / check (stores are re-scored without model or data)


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class CompareFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class CheckFormat(str, Enum):
    table = "table"
    json = "json"


class FailOn(str, Enum):
    overparameterized = "overparameterized"
    underparameterized = "underparameterized"
    any = "any"
    none = "none"


StoreRefs = Annotated[
    list[str],
    typer.Argument(
        help="Stores written by analyze; STORE.h5:NNNN selects one checkpoint group.",
        metavar="STORE",
        show_default=False,
    ),
]
STORED = "Unset: the value stored with each checkpoint."
RescoreThreshold = Annotated[float | None, typer.Option("--threshold", min=0.0, max=1.0, help=f"delta for k. {STORED}")]
RescoreTailThreshold = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help=f"A layer below this saturation can be in the tail. {STORED}")
]
RescoreMaxTail = Annotated[int | None, typer.Option(min=0, help=f"Overparameterized when the tail is longer. {STORED}")]
RescoreUnderThreshold = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help=f"Underparameterized when the average is at least this. {STORED}")
]


def _rescored(refs: list[str], overrides: ThresholdOverrides) -> list[tuple[str, CheckpointResult]]:
    """(label, result) for every checkpoint the references name, re-scored at the resolved thresholds."""
    out = []
    for text in refs:
        for loaded in load_checkpoints(parse_store_ref(text)):
            thresholds = resolve_thresholds(loaded.checkpoint, overrides)
            out.append((loaded.label, rescore(loaded.checkpoint, thresholds, store=str(loaded.ref.path))))
    return out


@app.command("report")
def report_command(
    stores: StoreRefs,
    threshold: RescoreThreshold = None,
    tail_threshold: RescoreTailThreshold = None,
    max_tail: RescoreMaxTail = None,
    under_threshold: RescoreUnderThreshold = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="table, or json / jsonl (one object per line) / csv.")
    ] = ReportFormat.table,
) -> None:
    """Re-score stored checkpoints at any thresholds, with no model and no data."""
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    results = [result for _, result in _rescored(stores, overrides)]
    if output_format is ReportFormat.table:
        out = Console(soft_wrap=False)
        for result in results:
            render_result(result, out)
    elif output_format is ReportFormat.csv:
        sys.stdout.write(results_csv(results))
    else:
        sys.stdout.write("".join(result_json(result) + "\n" for result in results))
    sys.stdout.flush()


@app.command("compare")
def compare_command(
    stores: StoreRefs,
    threshold: RescoreThreshold = None,
    tail_threshold: RescoreTailThreshold = None,
    max_tail: RescoreMaxTail = None,
    under_threshold: RescoreUnderThreshold = None,
    output_format: Annotated[
        CompareFormat, typer.Option("--format", "-f", help="table, or json / csv on stdout.")
    ] = CompareFormat.table,
) -> None:
    """Per-layer saturation of stored checkpoints side by side, with the change from the first one."""
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    comparison = compare(_rescored(stores, overrides))
    if output_format is CompareFormat.table:
        Console(soft_wrap=False).print(comparison_table(comparison))
    elif output_format is CompareFormat.csv:
        sys.stdout.write(comparison_csv(comparison))
    else:
        sys.stdout.write(comparison_json(comparison) + "\n")
    sys.stdout.flush()


@app.command("check")
def check_command(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Models to analyze, or stores (STORE.h5[:NNNN], recognized by content) to re-score.",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    fail_on: Annotated[
        FailOn,
        typer.Option(
            metavar="VERDICT",
            help="overparameterized | underparameterized | any | none: which verdict fails the check.",
        ),
    ] = FailOn.any,
    max_average: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Fail when the average saturation is above this.")
    ] = None,
    min_average: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Fail when the average saturation is below this.")
    ] = None,
    max_saturation: Annotated[
        list[str] | None,
        typer.Option(metavar="PATTERN=X", help="Fail when a layer matching the glob is above X (repeatable)."),
    ] = None,
    min_saturation: Annotated[
        list[str] | None,
        typer.Option(metavar="PATTERN=X", help="Fail when a layer matching the glob is below X (repeatable)."),
    ] = None,
    max_tail: Annotated[
        int | None,
        typer.Option(
            min=0, help="Fail when the tail is longer than this (also the verdict's max tail). Unset: 2, or as stored."
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="delta for k. Unset: 0.99, or as stored.")
    ] = None,
    tail_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="A layer below this saturation can be in the tail. Unset: 0.2, or as stored."
        ),
    ] = None,
    under_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Underparameterized when the average is at least this. Unset: 0.45, or as stored."
        ),
    ] = None,
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
    conv_method: Annotated[ConvMethod, typer.Option(help="How a conv output becomes samples.")] = ConvMethod.mean,
    sequence_method: Annotated[
        SequenceMethod, typer.Option(help="How a (B, T, d) output becomes samples.")
    ] = SequenceMethod.mean,
    output_format: Annotated[
        CheckFormat, typer.Option("--format", "-f", help="table: a summary line; json: one result per line.")
    ] = CheckFormat.table,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print each layer table and verdict.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """CI gate: exit 0 when every checkpoint passes, 1 when one fails, 2 for bad usage or input.

    By default any verdict but balanced fails. Stores are re-scored, at their stored thresholds unless set.
    """
    spec = gates.GateSpec(
        fail_on=fail_on.value,
        max_tail=max_tail,
        max_average=max_average,
        min_average=min_average,
        max_saturation=tuple(gates.parse_layer_limit(x, "--max-saturation") for x in max_saturation or ()),
        min_saturation=tuple(gates.parse_layer_limit(x, "--min-saturation") for x in min_saturation or ()),
    )
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    model_thresholds = overrides.apply(Thresholds())
    if model_thresholds.delta <= 0.0:
        raise SatcliError("--threshold must be in (0, 1]")
    options = AnalysisOptions(
        reduction=Reduction(conv_method.value, sequence_method.value),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        thresholds=model_thresholds,
        store_activations=False,
    )
    out = Console(soft_wrap=False)
    err = Console(stderr=True)
    source: DataSource | None = None
    failed = checked = 0
    for target in targets:
        if looks_like_store(target):
            scored = _rescored([target], overrides)
        else:
            if source is None:
                source = open_data(
                    data, _data_options(data_root, download, split, max_samples, batch_size, workers, image_size, seed)
                )
            loaded = load_model(
                Path(target), arch=arch, arch_kwargs=_arch_kwargs(arch_kwargs), trust_pickle=trust_pickle, device=device
            )
            scored = [(target, _score_model(loaded, source, options, err, quiet))]
        for label, result in scored:
            results = gates.evaluate(result.layers, result.verdict, spec)
            ok = gates.passed(results)
            checked += 1
            failed += not ok
            _print_check(label, result, results, output_format, verbose, out)
    if checked > 1:
        line = f"{'FAIL' if failed else 'PASS'}: {failed} of {checked} checkpoints failed"
        typer.echo(line, err=output_format is CheckFormat.json)
    if failed:
        raise typer.Exit(1)


def _score_model(
    loaded: LoadedModel, source: DataSource, options: AnalysisOptions, err: Console, quiet: bool
) -> CheckpointResult:
    """The analyze pipeline on one model, with analyze's progress bar on stderr and no store."""
    with _progress(err, quiet, loaded.path, source.num_samples) as advance:
        return analyze(loaded, source, options, None, advance)


def _print_check(
    label: str,
    result: CheckpointResult,
    results: tuple[gates.GateResult, ...],
    output_format: CheckFormat,
    verbose: bool,
    out: Console,
) -> None:
    """Failing gates on stderr, then the summary (stdout for table, stderr for json) or one JSON record."""
    as_json = output_format is CheckFormat.json
    if verbose and not as_json:
        render_result(result, out)
    for gate in results:
        if not gate.passed:
            typer.echo(gate.line(), err=True)
    if as_json:
        record = json.loads(result_json(result))
        record.update(target=label, passed=gates.passed(results), gates=[g.to_dict() for g in results])
        sys.stdout.write(json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    typer.echo(gates.summary(label, results, result.verdict), err=as_json)


@app.command("plot")
def plot_command(
    stores: Annotated[
        list[str],
        typer.Argument(
            help="Stores written by analyze; STORE.h5:NNNN selects one checkpoint group.",
            metavar="STORE.h5[:NNNN]...",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Image to write; the suffix picks the format (.png, .svg, .pdf).")
    ],
    checkpoint: Annotated[
        list[str] | None,
        typer.Option("--checkpoint", "-c", metavar="NNNN", help="Plot only this checkpoint group (repeatable)."),
    ] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="delta for k. (default: as stored)")] = None,
    tail_threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="A layer below this can be in the tail. (default: as stored)")
    ] = None,
    max_tail: Annotated[
        int | None, typer.Option(min=0, help="Overparameterized when the tail is longer. (default: as stored)")
    ] = None,
    under_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Underparameterized when the average is at least this. (default: as stored)"
        ),
    ] = None,
) -> None:
    """Plot saturation from a store: bars per layer for one checkpoint, a layers x checkpoints heatmap for several.

    Needs matplotlib (pip install 'satcli\\[plot]'). Numbers are re-scored from the store, as by report.
    """
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    results = load_results(stores, checkpoint or [], overrides)
    source = ", ".join(dict.fromkeys(parse_store_ref(text).path.name for text in stores))
    written = plot_results(results, output, source)
    typer.echo(f"wrote {written} ({len(results)} checkpoint{'s' if len(results) != 1 else ''})", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every expected failure into one line and an exit code."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="satcli", standalone_mode=False)
    except SatcliError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(EXIT_USAGE)
    except typer.TyperException as exc:  # usage errors from Typer's parser carry their exit code
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(exc.format_message() + hint)}")
        sys.exit(int(getattr(exc, "exit_code", EXIT_USAGE)))
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted; finished results and existing stores are kept")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SATCLI_DEBUG"):
            raise
        what = escape(f"{type(exc).__name__}: {exc}")
        err.print(f"[bold red]internal error:[/] {what} (set SATCLI_DEBUG=1 for a traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


from satcli.weights.commands import register as _register_weights  # noqa: E402  (svr, weights: issue 9)

_register_weights(app)
