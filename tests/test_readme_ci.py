"""The README's CI example and pinned pyproject settings work as written (exit codes included)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
EXIT_COMMENT = re.compile(r"#\s*exit (\d+)")


def block(marker: str) -> str:
    """The text between <!-- marker --> and <!-- /marker --> in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def ci_commands() -> list[tuple[list[str], int]]:
    """(argv after 'satcli', expected exit code) for each satcli line of the CI example."""
    commands = []
    for line in block("ci-example").splitlines():
        line = line.strip().removeprefix("run:").strip()
        if not line.startswith("satcli "):
            continue
        expected = EXIT_COMMENT.search(line)
        argv = shlex.split(line, comments=True)
        commands.append((argv[1:], int(expected.group(1)) if expected else 0))
    return commands


def test_the_example_has_a_passing_and_a_failing_line() -> None:
    commands = ci_commands()
    assert len(commands) == 3  # the Actions step and two shell lines
    assert sorted(code for _, code in commands) == [0, 0, 1]
    assert any("sample_models/deep_wide.pt2" in argv for argv, code in commands if code == 1)
    assert all("sample_models/sensible.pt2" in argv for argv, code in commands if code == 0)


@pytest.mark.parametrize(
    ("argv", "code"), list({" ".join(argv): (argv, code) for argv, code in ci_commands()}.values())
)
def test_ci_example_lines(run_cli, monkeypatch: pytest.MonkeyPatch, argv: list[str], code: int) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli(*argv, "-q")
    assert result.code == code, (result.stdout, result.stderr)
    assert result.stdout.startswith("PASS" if code == 0 else "FAIL")


def test_pinned_pyproject(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = re.search(r"```toml\n(.*?)```", block("ci-pyproject"), re.S)
    assert toml and "[tool.satcli]" in toml.group(1)
    (tmp_path / "pyproject.toml").write_text(toml.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    failing = run_cli("check", REPO / "sample_models" / "deep_wide.pt2", "-q")
    assert failing.code == 1 and "deep_wide.pt2 max-tail" in failing.stderr
    passing = run_cli("check", REPO / "sample_models" / "sensible.pt2", "-q")
    assert passing.code == 0, passing.stderr
