"""`satcli check`: the CI gate (exit 0 pass, 1 fail, 2 bad input)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from satcli.cli.app import EXIT_FAILED, EXIT_USAGE, app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.feedback import budget_bytes, progress_bar, tell_plan, warn_notes
from satcli.cli.groups import DataArgs, LayerArgs, ModelArgs, ThresholdArgs, with_groups
from satcli.cli.options import (
    UNSET_NOTE,
    AllowUndersampled,
    AnalysisSpecs,
    CheckFormat,
    CheckFormatOption,
    FailOn,
    MemoryBudget,
    Quiet,
    with_model_preprocessors,
)
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core import gates
    from satcli.core.results import CheckpointResult
    from satcli.data import DataSource
    from satcli.engine.options import AnalysisOptions
    from satcli.models import LoadedModel


@dataclass
class GateThresholdArgs(ThresholdArgs):
    """The verdict's thresholds, where the max tail is also a gate."""

    max_tail: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Fail when the tail is longer than this (also the verdict's max tail). "
            + UNSET_NOTE.format(default=2),
        ),
    ] = None


@app.command("check")
@with_groups
def check_command(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Models to analyze, or stores (STORE.h5[:NNNN], recognized by content) to re-score.",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    *,
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
    min_effective_rank: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, metavar="SHARE", help="Fail when a layer's effective rank / width is below this."
        ),
    ] = None,
    max_dead: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, metavar="SHARE", help="Fail when a layer (not the output layer) has more dead units."
        ),
    ] = None,
    thresholds: GateThresholdArgs,
    data: DataArgs,
    model: ModelArgs,
    layer: LayerArgs,
    analysis: AnalysisSpecs = None,
    allow_undersampled: AllowUndersampled = False,
    output_format: CheckFormatOption = CheckFormat.table,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print each layer table and verdict.")] = False,
    quiet: Quiet = False,
    memory_budget: MemoryBudget = None,
) -> None:
    """CI gate: exit 0 when every checkpoint passes, 1 when one fails, 2 for bad usage or input.

    By default any verdict but balanced fails. Stores are re-scored, at their stored thresholds unless set.
    An inconclusive verdict (most layers undersampled, nothing measured) is not gated and exits 2.
    """
    from satcli.store.rescore import looks_like_store, rescore_refs

    spec = _gate_spec(
        fail_on,
        thresholds.max_tail,
        max_average,
        min_average,
        max_saturation,
        min_saturation,
        min_effective_rank,
        max_dead,
    )
    overrides = thresholds.overrides()
    options = layer.analysis_options(
        thresholds=thresholds.thresholds(), store_activations=False, analyses=tuple(analysis or ())
    )
    out, err = stdout_console(), stderr_console()
    models = _ModelScorer(data, model, options, err, quiet, budget=budget_bytes(memory_budget))
    failed = checked = inconclusive = 0
    for target in targets:
        scored = rescore_refs([target], overrides) if looks_like_store(target) else [(target, models.score(target))]
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


def _gate_spec(
    fail_on: FailOn,
    max_tail: int | None,
    max_average: float | None,
    min_average: float | None,
    max_saturation: list[str] | None,
    min_saturation: list[str] | None,
    min_effective_rank: float | None = None,
    max_dead: float | None = None,
) -> Any:
    """The gates the options ask for; refuses a check that gates nothing."""
    from satcli.core import gates

    spec = gates.GateSpec(
        fail_on=fail_on.value,
        max_tail=max_tail,
        max_average=max_average,
        min_average=min_average,
        max_saturation=tuple(gates.parse_layer_limit(x, "--max-saturation") for x in max_saturation or ()),
        min_saturation=tuple(gates.parse_layer_limit(x, "--min-saturation") for x in min_saturation or ()),
        min_effective_rank=min_effective_rank,
        max_dead=max_dead,
    )
    limits = (spec.max_tail, spec.max_average, spec.min_average, min_effective_rank, max_dead)
    if (
        spec.fail_on == gates.FAIL_NONE
        and all(x is None for x in limits)
        and not (spec.max_saturation or spec.min_saturation)
    ):
        raise SatcliError("no gate to check: --fail-on none and no --max-*/--min-* option, so every model would pass")
    return spec


@dataclass
class _ModelScorer:
    """Scores model targets; the data are opened once, with the first model's tokenizer / image processor."""

    data: DataArgs
    model: ModelArgs
    options: Any
    err: Console
    quiet: bool
    source: Any = None
    budget: int | None = None

    def score(self, target: str) -> CheckpointResult:
        from satcli.data import open_data

        if self.source is None:
            opts = with_model_preprocessors(self.data.options(self.model.trust_remote_code), target)
            self.source = open_data(self.data.data, opts)
        load = self.model.loader(download=self.data.download)
        loaded = load(target if target.startswith("hf:") else Path(target))
        result = _score_model(loaded, self.source, self.options, self.err, self.quiet, self.budget)
        warn_notes(result, self.err)
        return result


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
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    err: Console,
    quiet: bool,
    budget: int | None = None,
) -> CheckpointResult:
    """The analyze pipeline on one model within the memory budget (None: the default share), with analyze's
    progress bar on stderr and no store."""
    from satcli.engine.passes import budgeted
    from satcli.engine.plan import default_budget
    from satcli.engine.sweep import score_checkpoint

    score = budgeted(score_checkpoint, default_budget() if budget is None else budget, partial(tell_plan, err, quiet))
    with progress_bar(err, quiet, loaded.path, source.num_samples) as advance:
        return score(loaded, source, options, None, on_batch=advance)


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
    from satcli.render.table import render_result

    as_json = output_format is CheckFormat.json
    if verbose and not as_json:
        render_result(result, out)
    for gate in results:
        if not gate.passed:
            typer.echo(gate.line(label), err=True)
    if as_json:
        _write_record(label, result, gates.passed(results), [g.to_dict() for g in results])
    typer.echo(gates.summary(label, results, result.verdict), err=as_json)


def _print_inconclusive(
    label: str, result: CheckpointResult, output_format: CheckFormat, verbose: bool, out: Console
) -> None:
    """An ungated checkpoint: the reason on stderr (what would make it gateable), JSON with passed null."""
    from satcli.render.table import render_result

    verdict = result.verdict
    hint = "add inputs, or pass --allow-undersampled to gate it anyway" if verdict.undersampled else "nothing to gate"
    if output_format is CheckFormat.json:
        _write_record(label, result, None, [])
    elif verbose:
        render_result(result, out)
    typer.echo(f"ERROR {label}: verdict {verdict.label}: {hint}", err=True)


def _write_record(label: str, result: CheckpointResult, passed: bool | None, gate_records: list[dict]) -> None:
    """One JSON line on stdout: the checkpoint's result with the target, whether it passed and its gates."""
    from satcli.render.serialize import result_json

    record = json.loads(result_json(result))
    record.update(target=label, passed=passed, gates=gate_records)
    sys.stdout.write(json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n")
    sys.stdout.flush()
