"""--help reads like other Typer CLIs: flags show no type, help text is plain text, docstrings re-flowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize("command", ["analyze", "check", "layers", "report", "compare", "plot"])
def test_flags_show_no_type_and_bracketed_notes_survive(run_cli: Callable[..., Any], command: str) -> None:
    result = run_cli(command, "--help")
    assert result.code == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "--help" in result.stdout and "Show this message and exit." in result.stdout


def test_analyze_help_keeps_default_notes_and_reflows_the_docstring(run_cli: Callable[..., Any]) -> None:
    text = run_cli("analyze", "--help").stdout
    flat = " ".join(text.replace("│", " ").split())
    assert "[default: $SATCLI_DATA_ROOT or ~/.cache/satcli/data]" in flat  # was swallowed as Rich markup
    assert "[default: on when the data carry labels]" in flat
    assert "Usage: satcli analyze [OPTIONS] {MODEL}..." in flat
    assert "one that fails is reported on stderr and skipped" in flat
    for flag in ("--download", "--trust-remote-code", "--trust-pickle", "--no-store", "--quiet"):
        line = next(line for line in text.splitlines() if f" {flag} " in line)
        assert "<" not in line, line


@pytest.mark.parametrize("command", ["analyze", "check", "layers", "merge", "plot", "project", "report", "compare"])
def test_help_shows_no_markup_escapes(run_cli: Callable[..., Any], command: str) -> None:
    text = run_cli(command, "--help").stdout
    assert "\\[" not in text  # a Rich escape printed as is
    if command == "plot":
        assert "pip install 'satcli[plot]'" in " ".join(text.replace("│", " ").split())


def _commands() -> dict[str, Any]:
    import typer

    from satcli.cli.app import app

    return typer.main.get_command(app).commands


@pytest.mark.parametrize("columns", ["80", "60"])
@pytest.mark.parametrize("command", sorted(_commands()))
def test_narrow_help_keeps_every_option_name_whole(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, command: str, columns: str
) -> None:
    """Typer's options table cut names evenly at 80 columns ("--trust-remote-co…"); names, short flags and
    metavars stay whole and only the help text wraps."""
    from typer.core import TyperOption

    monkeypatch.setenv("COLUMNS", columns)
    result = run_cli(command, "--help")
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= int(columns)
    words = {word for line in lines for word in line.replace("│", " ").replace(",", " ").split()}
    options = [p for p in _commands()[command].params if isinstance(p, TyperOption) and not p.hidden]
    assert options
    for option in options:
        for name in (*option.opts, *option.secondary_opts):
            assert name in words, (name, command, columns)


@pytest.mark.parametrize("columns", ["80", "60"])
def test_narrow_help_keeps_metavars_whole(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, columns
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    text = run_cli("analyze", "--help").stdout
    for metavar in ("<float32|float16>", "<table|jsonl|json|csv>", "<float range> [0.0<=x<=1.0]", "NAME[:OPT=V]"):
        assert metavar in text, metavar
