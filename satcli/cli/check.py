"""`satcli check`: the CI gate (exit 0 pass, 1 fail, 2 bad input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from satcli.cli.analyze import progress_bar, warn_notes
from satcli.cli.app import EXIT_FAILED, EXIT_USAGE, app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.options import (
    AllowUndersampled,
    Arch,
    ArchKwargs,
    BatchSize,
    CheckFormat,
    ConvMethod,
    ConvMethodOption,
    Data,
    DataRoot,
    Device,
    Download,
    Exclude,
    FailOn,
    GrayscaleToRgb,
    ImageSize,
    InputColumn,
    LabelColumn,
    Layers,
    MaxLength,
    MaxSamples,
    OnNonfinite,
    OnNonfiniteOption,
    Precision,
    PrecisionOption,
    Quiet,
    Seed,
    SequenceMethod,
    SequenceMethodOption,
    Split,
    TailThreshold,
    TextOptions,
    Threshold,
    Tokenizer,
    TrustPickle,
    TrustRemoteCode,
    UnderThreshold,
    Workers,
    arch_kwargs_dict,
    data_options,
    with_model_preprocessors,
)

if TYPE_CHECKING:
    from satcli.core import gates
    from satcli.core.results import CheckpointResult
    from satcli.data import DataSource
    from satcli.engine.options import AnalysisOptions
    from satcli.models import LoadedModel

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult
    from satcli.models import LoadedModel
from satcli.errors import SatcliError


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
    threshold: Threshold = None,
    tail_threshold: TailThreshold = None,
    under_threshold: UnderThreshold = None,
    data: Data = "digits",
    data_root: DataRoot = None,
    download: Download = False,
    split: Split = "test",
    max_samples: MaxSamples = None,
    batch_size: BatchSize = 256,
    workers: Workers = 0,
    image_size: ImageSize = None,
    grayscale_to_rgb: GrayscaleToRgb = False,
    seed: Seed = 0,
    input_column: InputColumn = None,
    label_column: LabelColumn = None,
    tokenizer: Tokenizer = None,
    max_length: MaxLength = None,
    arch: Arch = None,
    arch_kwargs: ArchKwargs = None,
    trust_pickle: TrustPickle = False,
    trust_remote_code: TrustRemoteCode = False,
    device: Device = "auto",
    layers: Layers = None,
    exclude: Exclude = None,
    conv_method: ConvMethodOption = ConvMethod.mean,
    sequence_method: SequenceMethodOption = SequenceMethod.mean,
    precision: PrecisionOption = Precision.float64,
    on_nonfinite: OnNonfiniteOption = OnNonfinite.skip,
    allow_undersampled: AllowUndersampled = False,
    output_format: Annotated[
        CheckFormat, typer.Option("--format", "-f", help="table: a summary line; json: one result per line.")
    ] = CheckFormat.table,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print each layer table and verdict.")] = False,
    quiet: Quiet = False,
) -> None:
    """CI gate: exit 0 when every checkpoint passes, 1 when one fails, 2 for bad usage or input.

    By default any verdict but balanced fails. Stores are re-scored, at their stored thresholds unless set.
    An inconclusive verdict (most layers undersampled, nothing measured) is not gated and exits 2.
    """
    from satcli.core import gates
    from satcli.core.verdict import ThresholdOverrides, Thresholds
    from satcli.data import open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.models import load_model
    from satcli.store.rescore import looks_like_store, rescore_refs
    from satcli.taps import Reduction

    # Heavy modules (torch, h5py) load here, not at start-up: --version and --help must stay fast.

    spec = gates.GateSpec(
        fail_on=fail_on.value,
        max_tail=max_tail,
        max_average=max_average,
        min_average=min_average,
        max_saturation=tuple(gates.parse_layer_limit(x, "--max-saturation") for x in max_saturation or ()),
        min_saturation=tuple(gates.parse_layer_limit(x, "--min-saturation") for x in min_saturation or ()),
    )
    if not (
        spec.fail_on != gates.FAIL_NONE
        or spec.max_tail is not None
        or spec.max_average is not None
        or spec.min_average is not None
        or spec.max_saturation
        or spec.min_saturation
    ):
        raise SatcliError("no gate to check: --fail-on none and no --max-*/--min-* option, so every model would pass")
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    model_thresholds = overrides.apply(Thresholds())
    options = AnalysisOptions(
        reduction=Reduction(conv_method.value, sequence_method.value),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        thresholds=model_thresholds,
        store_activations=False,
        precision=precision.value,
        on_nonfinite=on_nonfinite.value,
    )
    out = stdout_console()
    err = stderr_console()
    source: DataSource | None = None
    failed = checked = inconclusive = 0
    for target in targets:
        if looks_like_store(target):
            scored = rescore_refs([target], overrides)
        else:
            if source is None:
                text = TextOptions(input_column, label_column, tokenizer, max_length, trust_remote_code)
                opts = data_options(
                    data_root,
                    download,
                    split,
                    max_samples,
                    batch_size,
                    workers,
                    image_size,
                    seed,
                    grayscale_to_rgb=grayscale_to_rgb,
                    text=text,
                )
                source = open_data(data, with_model_preprocessors(opts, target))
            loaded = load_model(
                target if target.startswith("hf:") else Path(target),
                arch=arch,
                arch_kwargs=arch_kwargs_dict(arch_kwargs),
                trust_pickle=trust_pickle,
                device=device,
                trust_remote_code=trust_remote_code,
                download=download,
            )
            scored = [(target, _score_model(loaded, source, options, err, quiet))]
            warn_notes(scored[0][1], err)
        for label, result in scored:
            checked += 1
            outcome = _gate(label, result, spec, allow_undersampled, output_format, verbose, out)
            failed += outcome == "failed"
            inconclusive += outcome == "inconclusive"
    if checked > 1:
        line = f"{'FAIL' if failed or inconclusive else 'PASS'}: {failed} of {checked} checkpoints failed"
        line += f", {inconclusive} inconclusive" if inconclusive else ""
        typer.echo(line, err=output_format is CheckFormat.json)
    if inconclusive:
        raise typer.Exit(EXIT_USAGE)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _gate(
    label: str,
    result: CheckpointResult,
    spec: gates.GateSpec,
    allow_undersampled: bool,
    output_format: CheckFormat,
    verbose: bool,
    out: Console,
) -> str:
    """Gate one checkpoint and print it: 'passed', 'failed', or 'inconclusive' (not gated)."""
    from satcli.core import gates

    verdict = result.verdict
    if verdict.inconclusive is not None and not (allow_undersampled and verdict.undersampled):
        _print_inconclusive(label, result, output_format, verbose, out)
        return "inconclusive"
    results = gates.evaluate(result.layers, verdict, spec)
    _print_check(label, result, results, output_format, verbose, out)
    return "passed" if gates.passed(results) else "failed"


def _score_model(
    loaded: LoadedModel, source: DataSource, options: AnalysisOptions, err: Console, quiet: bool
) -> CheckpointResult:
    """The analyze pipeline on one model, with analyze's progress bar on stderr and no store."""
    from satcli.engine.sweep import score_checkpoint

    with progress_bar(err, quiet, loaded.path, source.num_samples) as advance:
        return score_checkpoint(loaded, source, options, None, on_batch=advance)


def _print_check(
    label: str,
    result: CheckpointResult,
    results: tuple[gates.GateResult, ...],
    output_format: CheckFormat,
    verbose: bool,
    out: Console,
) -> None:
    """Failing gates on stderr, then the summary (stdout for table, stderr for json) or one JSON record."""
    from satcli.core import gates
    from satcli.render.serialize import result_json
    from satcli.render.table import render_result

    as_json = output_format is CheckFormat.json
    if verbose and not as_json:
        render_result(result, out)
    for gate in results:
        if not gate.passed:
            typer.echo(gate.line(label), err=True)
    if as_json:
        record = json.loads(result_json(result))
        record.update(target=label, passed=gates.passed(results), gates=[g.to_dict() for g in results])
        sys.stdout.write(json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    typer.echo(gates.summary(label, results, result.verdict), err=as_json)


def _print_inconclusive(
    label: str, result: CheckpointResult, output_format: CheckFormat, verbose: bool, out: Console
) -> None:
    """An ungated checkpoint: the reason on stderr (what would make it gateable), JSON with passed null."""
    from satcli.render.serialize import result_json
    from satcli.render.table import render_result

    verdict = result.verdict
    hint = "add inputs, or pass --allow-undersampled to gate it anyway" if verdict.undersampled else "nothing to gate"
    if output_format is CheckFormat.json:
        record = json.loads(result_json(result))
        record.update(target=label, passed=None, gates=[])
        sys.stdout.write(json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif verbose:
        render_result(result, out)
    typer.echo(f"ERROR {label}: verdict {verdict.label}: {hint}", err=True)
