"""`satcli merge`: join the partial stores of `--shard I/K` jobs, or full stores, into one store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from satcli.cli.app import app
from satcli.cli.console import stdout_console


@app.command("merge")
def merge_command(
    parts: Annotated[
        list[Path],
        typer.Argument(
            help="Stores to join: every shard of one run, or full stores.", metavar="STORE", show_default=False
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged store to write.", show_default=False)],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file at the output path that is not a satcli store.")
    ] = False,
) -> None:
    """Merge shard stores exactly (a complete, disjoint set from one model, data and options), or concatenate
    full stores into one trajectory store; report, compare, check and plot then read the result. The sums of
    `satcli similarity --shard` jobs merge into the complete sums, and their CKA table is printed."""
    from satcli.store.cka_sums import is_sums_file
    from satcli.store.merge import merge_stores
    from satcli.store.safety import check_store_target

    if any(is_sums_file(part) for part in parts):
        from satcli.cli.options import CompareFormat
        from satcli.cli.similarity import merged_sums, show_report

        show_report(merged_sums(parts, output, debiased=False).report(), CompareFormat.table, None)
        return

    check_store_target(output, parts, replace_foreign=force)
    results = merge_stores(parts, output)
    out = stdout_console()
    for index, result in enumerate(results):
        average = "-" if result.verdict.average is None else f"{result.verdict.average:.3f}"
        out.print(
            f"{output}:{index:04d}  {result.model}  {result.options.get('num_inputs')} inputs  "
            f"average saturation {average}  {result.verdict.label}",
            soft_wrap=True,
            highlight=False,
        )
