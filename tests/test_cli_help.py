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
