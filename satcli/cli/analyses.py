"""`satcli analyses`: every analysis a run can add, when it runs, its options and their defaults."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from satcli.cli.app import app
from satcli.cli.console import stdout_console


@app.command("analyses")
def analyses_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per analysis on stdout.")] = False,
) -> None:
    """List the analyses: when each runs (on, on labelled data, or when asked with --analysis NAME[:opt=value]),
    what it requires, its options with their defaults, and its optional table columns (--columns)."""
    from satcli.analyses.registry import describe

    entries = describe()
    if as_json:
        sys.stdout.write("".join(json.dumps(entry) + "\n" for entry in entries))
        return
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for header in ("analysis", "runs", "options (defaults)", "requires", "columns", "what"):
        table.add_column(header, no_wrap=header in ("analysis", "runs"))
    runs = {"on": "always", "labelled": "labelled data", "off": "when asked"}
    for entry in entries:
        options = ", ".join(f"{key}={value}" for key, value in dict(entry["options"]).items())  # type: ignore[call-overload]
        table.add_row(
            str(entry["name"]),
            runs.get(str(entry["runs"]), str(entry["runs"])),
            options or "-",
            ", ".join(entry["requires"]) or "-",  # type: ignore[arg-type]
            ", ".join(entry["columns"]) or "-",  # type: ignore[arg-type]
            str(entry["summary"]),
        )
    from satcli.render.text import Fit, print_fitted

    print_fitted(stdout_console(), Fit(table))
