"""The entry point: the error boundary never loses a SIGTERM, and the command skips the exit-time collection."""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

import pytest
import tomllib
from conftest import REPO

main_module = importlib.import_module("satcli.cli.main")  # satcli.cli.main is also the function


class _SwallowsTerm:
    """Sends this process SIGTERM from __del__, where the handler's exception is unraisable (only printed)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecode after the kill, so the handler runs inside __del__
            pass


class _Command:
    def main(self, **_: object) -> int:
        thing = _SwallowsTerm()
        del thing
        return 0


def test_a_sigterm_whose_exception_was_swallowed_still_exits_143(monkeypatch, capsys) -> None:
    monkeypatch.setattr(main_module, "tidy_help", lambda command: _Command())
    swallowed: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: swallowed.append(unraisable.exc_type))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        main_module.main(["analyze"])
    assert exit_.value.code == main_module.EXIT_TERMINATED
    assert swallowed == [main_module.Terminated]  # the handler's exception was lost in __del__
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "terminated; finished results and existing stores are kept"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_a_normal_run_after_a_terminated_one_exits_0(monkeypatch) -> None:
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    monkeypatch.setattr(main_module, "tidy_help", lambda command: _Command())
    with pytest.raises(SystemExit):
        main_module.main(["analyze"])
    monkeypatch.setattr(main_module, "tidy_help", lambda command: type("C", (), {"main": lambda self, **_: 0})())
    with pytest.raises(SystemExit) as exit_:
        main_module.main(["analyze"])
    assert exit_.value.code == 0


def test_the_command_exits_with_mains_code_and_skips_the_final_collection(monkeypatch) -> None:
    def fake_main() -> None:
        raise SystemExit(2)

    monkeypatch.setattr(main_module, "main", fake_main)
    try:
        with pytest.raises(SystemExit) as exit_:
            main_module.entry()
        assert exit_.value.code == 2
        assert gc.get_freeze_count() > 0  # the objects are out of the exit-time collection's reach
    finally:
        gc.unfreeze()  # this test process goes on


def test_python_dash_m_and_the_console_script_both_run_entry() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["satcli"] == "satcli.cli.main:entry"
    assert "entry()" in (REPO / "satcli" / "__main__.py").read_text()
