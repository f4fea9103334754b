"""`satcli probe`: linear-probe accuracy per layer (docs/method.md sec. 9) beside saturation and the tail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stdout_console
from satcli.cli.groups import DataArgs, ModelArgs, with_groups
from satcli.cli.options import (
    CheckFormat,
    EvalData,
    EvalSplit,
    Exclude,
    Layers,
    ModelArgument,
    ObjectFormat,
    with_model_preprocessors,
)
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult


@app.command("probe")
@with_groups
def probe_command(
    model: ModelArgument,
    *,
    data: DataArgs,
    eval_data: EvalData = None,
    eval_split: EvalSplit = None,
    ridge: Annotated[
        float | None,
        typer.Option(
            help="Ridge alpha in units of the layer's mean variance [default: 1e-3; the store's with --fit-store]."
        ),
    ] = None,
    fit_store: Annotated[
        str | None,
        typer.Option(
            help="Fit the probes from this store's checkpoint (STORE.h5[:KEY], e.g. a merge of --shard stores "
            "written with --keep-moments) instead of a pass over --data; evaluate on --eval-data (default: --data).",
            metavar="STORE",
        ),
    ] = None,
    model_args: ModelArgs,
    layers: Layers = None,
    exclude: Exclude = None,
    output_format: ObjectFormat = CheckFormat.table,
) -> None:
    """Fit a linear probe per layer on --data and report its accuracy on --eval-data.

    Each layer's ridge probe comes from the streamed moments and per-class sums of the fit pass
    (labelled data); a second pass counts its correct predictions on the evaluation data. The table
    shows the accuracy, the gain over the previous layer and whether the layer is in the saturation tail.
    """
    from satcli.render.serialize import result_json

    if fit_store is not None:
        if layers or exclude:
            raise SatcliError("--layers and --exclude come from the stored fit with --fit-store; leave them out")
        result = _stored_fit(model, fit_store, data, eval_data, eval_split, ridge, model_args)
    else:
        result = _fit_and_evaluate(model, data, eval_data, eval_split, ridge, model_args, layers, exclude)
    if output_format is CheckFormat.json:
        sys.stdout.write(result_json(result) + "\n")
        sys.stdout.flush()
    else:
        out = stdout_console(highlight=False)
        options = result.options
        fit = fit_store if fit_store is not None else options.get("data")
        out.print(f"{result.model} · fit {fit} · eval {options.get('eval_data')}", soft_wrap=True)
        out.print(probe_table(result))
        if options.get("eval_data") == options.get("data"):
            out.print(
                "evaluated on the fit data: training accuracy, which a wide layer can reach by fitting noise; "
                "--eval-data or --eval-split give held-out accuracy",
                style="dim",
            )


def _fit_and_evaluate(
    model: Path,
    data: DataArgs,
    eval_data: str | None,
    eval_split: str | None,
    ridge: float | None,
    model_args: ModelArgs,
    layers: list[str] | None,
    exclude: list[str] | None,
) -> CheckpointResult:
    """The fit pass over --data, then the evaluation pass (engine/run.py)."""
    from satcli.cli.options import eval_source
    from satcli.core.probe import DEFAULT_RIDGE
    from satcli.data import open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.run import analyze
    from satcli.models import resolve_device

    fit_options = with_model_preprocessors(data.options(model_args.trust_remote_code), model)
    fit = open_data(data.data, fit_options)
    options = AnalysisOptions(
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        store_activations=False,
        analyses=(f"probe:ridge={DEFAULT_RIDGE if ridge is None else ridge}",),
        eval_data=eval_source(eval_data, eval_split, data.data, data.split, fit_options),
    )
    return analyze(model_args.loader(resolve_device(model_args.device), data.download)(model), fit, options)


def _stored_fit(
    model: Path,
    fit_store: str,
    data: DataArgs,
    eval_data: str | None,
    eval_split: str | None,
    ridge: float | None,
    model_args: ModelArgs,
) -> CheckpointResult:
    """The probes of a stored checkpoint's moments and class sums, evaluated on --eval-data (default --data)."""
    from satcli.analyses.probe import ProbeAnalysis, ProbeOptions
    from satcli.analyses.score import score_state
    from satcli.cli.options import eval_source
    from satcli.core.probe import DEFAULT_RIDGE
    from satcli.data import open_data
    from satcli.engine.evaluate import evaluate_stored_fit
    from satcli.models import resolve_device
    from satcli.store.rescore import load_checkpoints, parse_store_ref, stored_thresholds

    ref = parse_store_ref(fit_store)
    found = load_checkpoints(ref)
    if len(found) > 1:
        keys = ", ".join(c.checkpoint.key for c in found)
        raise SatcliError(f"{ref.path} holds {len(found)} checkpoints ({keys}); name one as {ref.path}:KEY")
    checkpoint = found[0].checkpoint
    state = checkpoint.state()
    if ridge is None:
        stored = [layer.extras["probe"] for layer in state.layers if isinstance(layer.extras.get("probe"), dict)]
        ridge = float(stored[0].get("ridge", DEFAULT_RIDGE)) if stored else DEFAULT_RIDGE  # type: ignore[union-attr]
    fit_options = with_model_preprocessors(data.options(model_args.trust_remote_code), model)
    evaluate = eval_source(eval_data, eval_split, data.data, data.split, fit_options) or open_data(
        data.data, fit_options
    )
    loaded = model_args.loader(resolve_device(model_args.device), data.download)(model)
    probe = ProbeAnalysis(ProbeOptions(ridge), loaded.device)
    evaluated = evaluate_stored_fit(loaded, evaluate, state, [probe])  # type: ignore[arg-type]
    return score_state(evaluated, stored_thresholds(checkpoint), store=str(ref))


def probe_table(result: CheckpointResult) -> object:
    """One row per layer: width, saturation, tail, probe accuracy and gain."""
    from rich import box
    from rich.table import Table

    from satcli.analyses.base import number_cell, percent_cell

    table = Table(box=box.SIMPLE_HEAD)
    for header in ("#", "layer", "width", "saturation", "tail", "probe", "gain", "n_eval"):
        table.add_column(header, justify="left" if header in ("layer", "tail") else "right")
    tail = set(result.verdict.tail)
    for i, layer in enumerate(result.layers, start=1):
        probe = layer.extras.get("probe") or {}
        table.add_row(
            str(i),
            layer.name,
            str(layer.width),
            percent_cell(layer.saturation),
            "tail" if layer.name in tail else "",
            percent_cell(probe.get("accuracy")),  # type: ignore[union-attr]
            number_cell(probe.get("gain"), "+.1%"),  # type: ignore[union-attr]
            str(probe.get("n_eval", "")),  # type: ignore[union-attr]
        )
    return table
