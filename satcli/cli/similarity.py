"""`satcli similarity`: linear CKA between the layers of one model, or between the layers of two models."""

from __future__ import annotations

import contextlib
import os
import re
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
    CompareFormat,
    CompareFormatOption,
    ConvMethod,
    ConvMethodOption,
    Exclude,
    Layers,
    Quiet,
    SequenceMethod,
    SequenceMethodOption,
    with_model_preprocessors,
)
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core.similarity import OnPass, SimilarityReport
    from satcli.engine.similarity import ReportBuilder, SimilarityOptions
    from satcli.store.cka_sums import SumsWriter

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from a size such as 600MB (10^6), 2GiB (2^30), 512k or 1000000."""
    match = _SIZE.match(text)
    if match is None:
        raise SatcliError(f"cannot read the size {text!r}; write it like 600MB, 2GiB or 1000000")
    number, prefix, binary, _ = match.groups()
    prefix = prefix.lower()
    if binary and not prefix:
        raise SatcliError(f"cannot read the size {text!r}; write it like 600MB, 2GiB or 1000000")
    scale = 1024 ** ("kmgt".index(prefix) + 1) if binary else _UNITS[prefix]
    size = int(float(number) * scale)
    if size <= 0:
        raise SatcliError(f"the memory budget must be positive, got {text!r}")
    return size


def default_budget() -> int:
    """A quarter of the memory available now (Linux/macOS sysconf), or 1 GiB when it cannot be read."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 30
    return max(available // 4, 64 << 20)


@app.command("similarity")
@with_groups
def similarity_command(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="One model (CKA between each pair of its layers) or two (each layer of the first against each "
            "layer of the second, on the same inputs). Same forms as analyze's MODEL.",
            metavar="MODEL [MODEL2]",
            show_default=False,
        ),
    ],
    *,
    data: DataArgs,
    model_args: ModelArgs,
    layers: Layers = None,
    exclude: Exclude = None,
    conv_method: ConvMethodOption = ConvMethod.mean,
    sequence_method: SequenceMethodOption = SequenceMethod.mean,
    debiased: Annotated[
        bool, typer.Option("--debiased", help="Also give debiased CKA (unbiased HSIC, Song et al. 2012).")
    ] = False,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            help="Memory for the float64 sums, e.g. 600MB or 2GiB; pairs that do not fit together take more "
            "passes over the data [default: a quarter of the available memory].",
            show_default=False,
        ),
    ] = None,
    output_format: CompareFormatOption = CompareFormat.table,
    plot: Annotated[Path | None, typer.Option(help="Also draw the CKA matrix as a heatmap to this image.")] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Stream only shard I of K of the data (I/K, from 0) and write its sums to --output; join the parts "
            "with satcli merge or satcli similarity --merge."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the float64 CKA sums (HDF5) to this file.", show_default=False),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="MODEL... are sums files (-o) to read: every shard of one run, or one complete file."
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Linear CKA (Kornblith et al. 2019) between layers, from exact streamed float64 sums.

    One row per input and layer, pooled as analyze pools (--conv-method, --sequence-method; channelwise and
    token samples are averaged per input). Split the data with --shard I/K jobs (then merge their sums) or run
    under torchrun (rank 0 gathers every rank's sums); both give the one-process numbers.
    """
    from satcli.engine.similarity import ReportBuilder, SimilarityOptions
    from satcli.render.plot import check_image_path
    from satcli.taps import Reduction

    if plot is not None:
        check_image_path(plot)
    if merge:
        build = merged_sums(models, output, debiased, shard)
    else:
        if len(models) > 2:
            raise SatcliError(f"similarity takes one or two models, got {len(models)}")
        options = SimilarityOptions(
            reduction=Reduction(conv_method.value, sequence_method.value),
            include=tuple(layers or ()),
            exclude=tuple(exclude or ()),
            debiased=debiased,
            memory_budget=default_budget() if memory_budget is None else parse_size(memory_budget),
        )
        build = _streamed(models, data, model_args, options, shard, output, quiet)
    if not isinstance(build, ReportBuilder):
        return
    show_report(build.report(), output_format, plot)


def show_report(report: SimilarityReport, output_format: CompareFormat, plot: Path | None) -> None:
    """The report on stdout as a table, JSON or CSV; the heatmap to `plot`."""
    from satcli.render.similarity import plot_similarity, render_similarity, similarity_csv, similarity_json

    if output_format is CompareFormat.json:
        sys.stdout.write(similarity_json(report) + "\n")
    elif output_format is CompareFormat.csv:
        sys.stdout.write(similarity_csv(report))
    else:
        render_similarity(report, stdout_console())
    sys.stdout.flush()
    if plot is not None:
        typer.echo(f"wrote {plot_similarity(report, plot)}", err=True)


def merged_sums(parts: list[Path], output: Path | None, debiased: bool, shard: str | None = None) -> ReportBuilder:
    """The report of merged sums files (and the merged sums written to `output`)."""
    from satcli.engine.similarity import ReportBuilder, fan_out
    from satcli.store.cka_sums import merge_sums

    if shard is not None:
        raise SatcliError("--merge joins the shards' sums; leave out --shard")
    build = ReportBuilder(debiased, budget=0)
    writer = _writer(output, parts, {"partial": False, "merged_parts": len(parts)})
    with _committed(writer, lambda: build.budget):
        build.budget = merge_sums(parts, fan_out(build, writer))
    return build


def _streamed(
    models: list[Path], data: DataArgs, model_args: ModelArgs, options: SimilarityOptions, shard: str | None,
    output: Path | None, quiet: bool,
) -> ReportBuilder | None:  # fmt: skip
    """Stream the sums of this process' data: all of it, one --shard, or (under torchrun) this rank's shard,
    gathered on rank 0. The report on rank 0 unless this is a shard job; the sums written to `output`."""
    from satcli.data import open_data
    from satcli.engine.distributed import gather_objects, launched_ranks, parse_shard, process_group, shard_source
    from satcli.engine.similarity import ReportBuilder, fan_out, stream_sums
    from satcli.engine.similarity_split import stream_gathered
    from satcli.models import resolve_device

    ranks = launched_ranks()
    if shard is not None and ranks is not None and ranks[1] > 1:
        raise SatcliError("a shard job cannot also run under torchrun; use one way of splitting the data")
    if shard is not None and output is None:
        raise SatcliError("--shard writes its part of the sums to a file; give it with --output/-o")
    source = open_data(data.data, with_model_preprocessors(data.options(model_args.trust_remote_code), models[0]))
    attrs: dict[str, object] = {"partial": False}
    if shard is not None:
        source, plan = shard_source(source, *parse_shard(shard))
        attrs = plan.to_attrs()
    device = resolve_device(model_args.device)
    rank = 0 if ranks is None else ranks[0]
    group = process_group(device) if ranks is not None else contextlib.nullcontext()
    with group:
        if ranks is not None:
            source, _ = shard_source(source, rank, ranks[1])
            options = replace(options, memory_budget=min(gather_objects(options.memory_budget)))  # one plan
        load = model_args.loader(device, data.download)
        loaded = [load(path) for path in models]
        build = None if shard is not None or rank else ReportBuilder(options.debiased, options.memory_budget)
        writer = _writer(output, models, attrs) if rank == 0 else None
        on_pass = fan_out(build, writer)
        with _progress(quiet or rank > 0, source.num_samples) as advance, _committed(writer, options.memory_budget):

            def stream(target: OnPass) -> None:
                stream_sums(loaded[0], loaded[1] if len(loaded) > 1 else None, source, options, target, advance)

            if ranks is None:
                stream(on_pass)
            else:
                stream_gathered(stream, on_pass, rank)
    if writer is not None and shard is not None:
        typer.echo(f"wrote {output}: the sums of shard {shard} ({source.num_samples} inputs)", err=True)
    return build


def _writer(output: Path | None, inputs: list[Path], attrs: dict[str, object]) -> SumsWriter | None:
    from satcli.store.cka_sums import SumsWriter, check_sums_target

    if output is None:
        return None
    check_sums_target(output, inputs)
    return SumsWriter(output, attrs)


@contextlib.contextmanager
def _committed(writer: SumsWriter | None, budget: int | Callable[[], int]) -> Iterator[None]:
    """Commit the writer when the block succeeds, remove its temp file when it fails."""
    try:
        yield
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.commit(budget() if callable(budget) else budget)


@contextlib.contextmanager
def _progress(quiet: bool, total: int) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr, one task per pass over the data (off when not a terminal)."""
    from satcli.render.progress import make_progress

    progress = make_progress(stderr_console())
    progress.disable = quiet or not progress.console.is_terminal
    tasks: dict[int, object] = {}
    with progress:

        def advance(number: int, count: int) -> None:
            if number not in tasks:
                tasks[number] = progress.add_task(f"pass {number}", total=total)
            progress.advance(tasks[number], count)  # type: ignore[arg-type]

        yield advance
