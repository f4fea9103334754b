"""The CLI reference (docs/cli.md) shows the real output of `satcli svr` and `satcli weights` on the sample CNN."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO


def _shown(command: str) -> str:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    match = re.search(rf"```\n\$ {re.escape(command)}\n(.*?)```", text, re.S)
    assert match, f"docs/cli.md shows no output of {command}"
    return match.group(1)


@pytest.mark.parametrize(
    "command", ["satcli svr sample_models/sensible.pt2", "satcli weights sample_models/sensible.pt2"]
)
def test_shown_output_is_current(run_cli, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli(*command.split()[1:])
    assert result.code == 0, result.stderr
    assert [line.rstrip() for line in result.stdout.splitlines()] == _shown(command).splitlines()
