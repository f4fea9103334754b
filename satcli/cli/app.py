"""The Typer application, its --version and the [tool.satcli] defaults from pyproject.toml."""

from __future__ import annotations

from typing import Annotated

import typer

from satcli import __version__
from satcli.cli.config import load_config

EXIT_FAILED = 1  # a check failed
EXIT_USAGE = 2  # bad input or usage
EXIT_INTERNAL = 3  # a bug in satcli

app = typer.Typer(
    name="satcli",
    help="Per-layer intrinsic dimensionality and saturation of PyTorch checkpoints, with a verdict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"satcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """satcli: how much of each layer's width the data actually uses."""
    # [tool.satcli] in the nearest pyproject.toml becomes the commands' defaults (shown by --help).
    commands = getattr(ctx.command, "commands", {})
    params = {name: [p.name for p in command.params if p.name] for name, command in commands.items()}
    ctx.default_map = {**load_config().default_map(params), **(ctx.default_map or {})}
