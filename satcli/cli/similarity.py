"""`satcli similarity`: linear CKA between the layers of one model, or between the layers of two models."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

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
    quiet: Quiet = False,
) -> None:
    """Linear CKA (Kornblith et al. 2019) between layers, from exact streamed float64 sums.

    One row per input and layer, pooled as analyze pools (--conv-method, --sequence-method; channelwise and
    token samples are averaged per input). Shards and torchrun are not supported by this command.
    """
    from satcli.data import open_data
    from satcli.engine.similarity import SimilarityOptions, similarity
    from satcli.models import resolve_device
    from satcli.render.plot import check_image_path
    from satcli.render.similarity import plot_similarity, render_similarity, similarity_csv, similarity_json
    from satcli.taps import Reduction

    if len(models) > 2:
        raise SatcliError(f"similarity takes one or two models, got {len(models)}")
    if plot is not None:
        check_image_path(plot)
    options = SimilarityOptions(
        reduction=Reduction(conv_method.value, sequence_method.value),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        debiased=debiased,
        memory_budget=default_budget() if memory_budget is None else parse_size(memory_budget),
    )
    source = open_data(data.data, with_model_preprocessors(data.options(model_args.trust_remote_code), models[0]))
    load = model_args.loader(resolve_device(model_args.device), data.download)
    loaded = [load(path) for path in models]
    with _progress(quiet, source.num_samples) as advance:
        report = similarity(loaded[0], loaded[1] if len(loaded) > 1 else None, source, options, advance)
    if output_format is CompareFormat.json:
        sys.stdout.write(similarity_json(report) + "\n")
    elif output_format is CompareFormat.csv:
        sys.stdout.write(similarity_csv(report))
    else:
        render_similarity(report, stdout_console())
    sys.stdout.flush()
    if plot is not None:
        typer.echo(f"wrote {plot_similarity(report, plot)}", err=True)


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
