"""`satcli report` and `satcli compare`: re-score stored checkpoints with no model and no data."""

from __future__ import annotations

import itertools
import json
import sys
from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.groups import ThresholdArgs, with_groups
from satcli.cli.options import (
    CheckpointKeys,
    CompareFormat,
    EarlyCheckpoints,
    Quiet,
    ReportFormat,
    SettleTolerance,
    SettleWindow,
    StoreRefs,
)
from satcli.core.trajectory import TrajectoryRule


@app.command("report")
@with_groups
def report_command(
    stores: StoreRefs,
    *,
    checkpoint: CheckpointKeys = None,
    thresholds: ThresholdArgs,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="table, or json / jsonl (one object per line) / csv.")
    ] = ReportFormat.table,
    quiet: Quiet = False,
    settle_tolerance: SettleTolerance = TrajectoryRule.tolerance,
    settle_window: SettleWindow = TrajectoryRule.window,
    early_checkpoints: EarlyCheckpoints = TrajectoryRule.early_checkpoints,
) -> None:
    """Re-score stored checkpoints at any thresholds, with no model and no data.

    A store holding a trajectory (two or more checkpoints) gets a summary after its tables: the first and
    last average saturation, an early underparameterized flag and the step where saturation settled.
    -q is accepted as in analyze and check (report never shows a progress bar).
    """
    from satcli.core.trajectory import summarize
    from satcli.render.serialize import result_json, results_csv
    from satcli.render.summary import render_summary
    from satcli.render.table import render_result
    from satcli.store.rescore import rescore_refs

    del quiet
    overrides = thresholds.overrides()
    results = [result for _, result in rescore_refs(stores, overrides, checkpoint or [])]
    if output_format is ReportFormat.table:
        out = stdout_console()
        for result in results:
            render_result(result, out)
        rule = TrajectoryRule(settle_tolerance, settle_window, early_checkpoints)
        for store, run in itertools.groupby(results, key=lambda r: r.store):
            checkpoints = list(run)
            if len(checkpoints) > 1:
                out.print()
                render_summary(f"of {store}", summarize(checkpoints, rule), out)
    elif output_format is ReportFormat.csv:
        sys.stdout.write(results_csv(results))
    else:
        sys.stdout.write("".join(result_json(result) + "\n" for result in results))
    sys.stdout.flush()


@app.command("compare")
@with_groups
def compare_command(
    stores: StoreRefs,
    *,
    thresholds: ThresholdArgs,
    output_format: Annotated[
        CompareFormat, typer.Option("--format", "-f", help="table, or json / csv on stdout.")
    ] = CompareFormat.table,
) -> None:
    """Per-layer saturation of stored checkpoints side by side, with the change from the first one.

    When the stores keep per-input activations of the same inputs (analyze's default), each layer's linear
    CKA between the first checkpoint and every other one is added (table and json).
    """
    from satcli.core.compare import compare
    from satcli.render.compare import cka_record, cka_table, comparison_csv, comparison_json, comparison_table
    from satcli.render.text import fitted, natural_width
    from satcli.store.rescore import rescore_refs
    from satcli.store.similarity import stored_cka

    overrides = thresholds.overrides()
    comparison = compare(rescore_refs(stores, overrides))
    cka = stored_cka(stores) if output_format is not CompareFormat.csv else None
    if output_format is CompareFormat.table:
        out = stdout_console()
        # Off a terminal with no COLUMNS the table takes its natural width; else it splits into blocks.
        table = comparison_table(comparison, None if getattr(out, "fit_content", False) else out.width)
        with fitted(out, natural_width(out, table)):
            out.print(table)
            if cka is not None and not isinstance(cka, str):
                out.print()
                out.print(cka_table(comparison, cka))
    elif output_format is CompareFormat.csv:
        sys.stdout.write(comparison_csv(comparison))
    else:
        record = json.loads(comparison_json(comparison))
        record["cka"] = cka_record(comparison, cka) if cka is not None and not isinstance(cka, str) else None
        sys.stdout.write(json.dumps(record, allow_nan=False) + "\n")
    sys.stdout.flush()
    if isinstance(cka, str):
        stderr_console().print(f"note: {cka}", soft_wrap=True, highlight=False, markup=False)
