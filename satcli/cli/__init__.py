"""The command line: thin Typer commands, one module each; `main` is the one error boundary."""

from satcli.cli import (  # noqa: F401  (registers the commands)
    analyses,
    analyze,
    check,
    layers,
    merge,
    plot,
    probe,
    project,
    rescore,
    rf,
    similarity,
    weights,
)
from satcli.cli.app import app
from satcli.cli.main import main

__all__ = ["app", "main"]
