"""The Typer application, its --version and the [tool.satcli] defaults from pyproject.toml."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

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
    config = load_config()
    configured = config.default_map(params)
    _show_configured_defaults(commands, configured, config.path)
    ctx.default_map = {**configured, **(ctx.default_map or {})}


# An option's own note of its default in its help text ("[default: 2; for a store: as stored]"), as escaped.
_DEFAULT_NOTE = re.compile(r"\\?\[default: [^\]]*\]")


def _show_configured_defaults(commands: dict[str, Any], configured: dict[str, dict[str, object]], source: Any) -> None:
    """One default per option in --help, the one in force: a [tool.satcli] setting replaces the option's own
    note and Typer's `[default: ...]`, and names the file it came from. The Click commands live as long as the
    process, so each invocation starts again from the original help."""
    for name, command in commands.items():
        chosen = configured.get(name, {})
        for param in command.params:
            if not hasattr(param, "_satcli_help"):
                param._satcli_help = (param.help, param.show_default)
            param.help, param.show_default = param._satcli_help
            if param.name not in chosen or source is None:
                continue
            note = escape(f"[default: {_shown(chosen[param.name])} from {os.path.relpath(source)}]")
            help_text = _DEFAULT_NOTE.sub("", param.help or "").rstrip()
            param.help, param.show_default = f"{help_text} {note}".lstrip(), False


def _shown(value: object) -> str:
    """A configured value as it would be typed: list items joined by commas."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(getattr(value, "value", value))


def tidy_help(command: Any) -> Any:
    """Make --help read like other Typer CLIs, for the command and its subcommands; returns the command.

    Typer's Rich help shows a `<bool>` type for flags, which take no value; it reads help text as Rich markup,
    which swallowed our `[default: ...]` notes; it keeps the line breaks of a docstring's source; and at 80
    columns it cuts option names ("--trust-remote-co…"). Here flags show no type, help is plain text,
    paragraphs are re-flowed to the terminal and option names, flags and metavars are never cut (help_panel.py).
    """
    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(escape(" ".join(p.split())) for p in paragraphs)
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        if getattr(param, "help", None):
            param.help = escape(param.help)
    command.get_help_option = _untyped(command.get_help_option)
    command.format_help = _fitted(command.format_help)
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def _fitted(format_help: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """The command's help printed with its options panels laid out by help_panel (imported only for --help)."""

    def format_fitted(ctx: Any, formatter: Any) -> None:
        from satcli.cli.help_panel import fitted_options_panels

        with fitted_options_panels():
            format_help(ctx, formatter)

    return format_fitted


def _untyped(get_help_option: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """--help is a flag too; Click builds it lazily, so it is tidied when asked for."""

    def get(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return get
