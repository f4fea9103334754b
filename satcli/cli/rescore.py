"""`satcli report` and `satcli compare`: re-score stored checkpoints with no model and no data."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from satcli.cli.app import app
from satcli.cli.console import stderr_console, stdout_console
from satcli.cli.groups import ThresholdArgs, with_groups
from satcli.cli.options import (
    CheckpointKeys,
    Columns,
    CompareFormat,
    CompareFormatOption,
    EarlyCheckpoints,
    Quiet,
    ReportFormat,
    ReportFormatOption,
    SettleTolerance,
    SettleWindow,
    StoreRefs,
)
from satcli.core.trajectory import TrajectoryRule
from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult

# Formats written whole, after every checkpoint is read: html (a page) and parquet (binary, -o only).
FILE_FORMATS = (ReportFormat.html, ReportFormat.parquet)


@app.command("report")
@with_groups
def report_command(
    stores: StoreRefs,
    *,
    checkpoint: CheckpointKeys = None,
    thresholds: ThresholdArgs,
    output_format: ReportFormatOption = ReportFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the html or parquet report here.")
    ] = None,
    quiet: Quiet = False,
    settle_tolerance: SettleTolerance = TrajectoryRule.tolerance,
    settle_window: SettleWindow = TrajectoryRule.window,
    early_checkpoints: EarlyCheckpoints = TrajectoryRule.early_checkpoints,
    columns: Columns = None,
) -> None:
    """Re-score stored checkpoints at any thresholds, with no model and no data.

    A store holding a trajectory (two or more checkpoints) gets a summary after its tables: the first and
    last average saturation, an early underparameterized flag and the step where saturation settled.
    -q is accepted as in analyze and check (report never shows a progress bar).
    """
    from satcli.core.trajectory import summarize
    from satcli.render.serialize import result_json, results_csv, results_json
    from satcli.render.summary import render_summary
    from satcli.render.table import render_result
    from satcli.store.rescore import rescore_refs

    del quiet
    _check_output(output_format, output)
    overrides = thresholds.overrides()
    results = [result for _, result in rescore_refs(stores, overrides, checkpoint or [])]
    _warn_unknown(results)
    rule = TrajectoryRule(settle_tolerance, settle_window, early_checkpoints)
    if output_format in FILE_FORMATS:
        _write_report(results, output_format, output, rule)
        return
    if output_format is ReportFormat.table:
        out = stdout_console()
        for result in results:
            render_result(result, out, tuple(columns or ()))
        for store, run in itertools.groupby(results, key=lambda r: r.store):
            checkpoints = list(run)
            if len(checkpoints) > 1:
                out.print()
                render_summary(f"of {store}", summarize(checkpoints, rule), out)
    elif output_format is ReportFormat.csv:
        sys.stdout.write(results_csv(results))
    elif output_format is ReportFormat.json and len(results) != 1:
        sys.stdout.write(results_json(results) + "\n")
    else:
        sys.stdout.write("".join(result_json(result) + "\n" for result in results))
    sys.stdout.flush()


def _check_output(output_format: ReportFormat, output: Path | None) -> None:
    """Refuse, before any store is read, an output the format cannot go to."""
    from satcli.render.frame import check_parquet_writable
    from satcli.render.output import check_output_dir

    if output is not None and output_format not in FILE_FORMATS:
        raise SatcliError(f"-o writes html or parquet; --format {output_format.value} goes to stdout")
    if output_format is ReportFormat.parquet:
        if output is None:
            raise SatcliError("--format parquet is binary: give a file with -o FILE")
        check_parquet_writable(output)
    elif output is not None:
        check_output_dir(output)


def _write_report(
    results: list[CheckpointResult], output_format: ReportFormat, output: Path | None, rule: TrajectoryRule
) -> None:
    """The html page (to `output` or stdout) or the parquet file."""
    from satcli.render.frame import write_parquet
    from satcli.render.html import html_report
    from satcli.render.output import write_text

    if output_format is ReportFormat.parquet and output is not None:
        write_parquet(results, output)
        return
    page = html_report(results, rule)
    if output is None:
        sys.stdout.write(page)
        sys.stdout.flush()
    else:
        write_text(output, page)


def _warn_unknown(results: list[CheckpointResult]) -> None:
    """One stderr line per checkpoint holding an analysis' state this satcli cannot score (kept, not dropped)."""
    from satcli.render.notes import unknown_analysis_notes

    err = stderr_console()
    for result in results:
        for note in unknown_analysis_notes(result):
            err.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True, highlight=False)


@app.command("compare")
@with_groups
def compare_command(
    stores: StoreRefs,
    *,
    thresholds: ThresholdArgs,
    output_format: CompareFormatOption = CompareFormat.table,
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
