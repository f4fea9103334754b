"""`satcli report` and `satcli compare`: re-score stored checkpoints with no model and no data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stdout_console
from satcli.cli.options import (
    CompareFormat,
    MaxTail,
    ReportFormat,
    StoreRefs,
    TailThreshold,
    Threshold,
    UnderThreshold,
)
from satcli.core.compare import compare
from satcli.core.verdict import ThresholdOverrides
from satcli.render.compare import comparison_csv, comparison_json, comparison_table
from satcli.render.serialize import result_json, results_csv
from satcli.render.table import render_result
from satcli.render.text import fitted, natural_width
from satcli.store.rescore import rescore_refs


@app.command("report")
def report_command(
    stores: StoreRefs,
    threshold: Threshold = None,
    tail_threshold: TailThreshold = None,
    max_tail: MaxTail = None,
    under_threshold: UnderThreshold = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="table, or json / jsonl (one object per line) / csv.")
    ] = ReportFormat.table,
) -> None:
    """Re-score stored checkpoints at any thresholds, with no model and no data."""
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    results = [result for _, result in rescore_refs(stores, overrides)]
    if output_format is ReportFormat.table:
        out = stdout_console()
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
    threshold: Threshold = None,
    tail_threshold: TailThreshold = None,
    max_tail: MaxTail = None,
    under_threshold: UnderThreshold = None,
    output_format: Annotated[
        CompareFormat, typer.Option("--format", "-f", help="table, or json / csv on stdout.")
    ] = CompareFormat.table,
) -> None:
    """Per-layer saturation of stored checkpoints side by side, with the change from the first one."""
    overrides = ThresholdOverrides(threshold, tail_threshold, max_tail, under_threshold)
    comparison = compare(rescore_refs(stores, overrides))
    if output_format is CompareFormat.table:
        out, table = stdout_console(), comparison_table(comparison)
        with fitted(out, natural_width(out, table)):
            out.print(table)
    elif output_format is CompareFormat.csv:
        sys.stdout.write(comparison_csv(comparison))
    else:
        sys.stdout.write(comparison_json(comparison) + "\n")
    sys.stdout.flush()
