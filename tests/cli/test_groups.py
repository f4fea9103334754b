"""The shared option groups: the verdict thresholds are the same four options on every scoring command."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_MODELS
from store_helpers import sample_store

GIVEN = ("--threshold", "0.95", "--tail-threshold", "0.5", "--max-tail", "0", "--under-threshold", "0.9")
EXPECTED = {"delta": 0.95, "tail_threshold": 0.5, "max_tail": 0, "under_threshold": 0.9}


@pytest.mark.parametrize("command", ["analyze", "check", "report", "compare", "plot"])
def test_every_scoring_command_offers_the_four_thresholds(run_cli, command: str) -> None:
    shown = run_cli(command, "--help").stdout
    for option in ("--threshold", "--tail-threshold", "--max-tail", "--under-threshold"):
        assert option in shown, (command, option)
    # check's max tail is also its gate, and says so
    assert ("Fail when the tail is longer" in shown) == (command == "check")


def _thresholds(stdout: str) -> dict[str, object]:
    return {key: json.loads(stdout.splitlines()[0])["thresholds"][key] for key in EXPECTED}


def test_given_thresholds_reach_each_command(run_cli, tmp_path) -> None:
    store = sample_store("deep_wide")
    assert _thresholds(run_cli("report", store, "-f", "json", *GIVEN).stdout) == EXPECTED
    model = SAMPLE_MODELS / "sensible.pt2"
    analyzed = run_cli("analyze", model, "--no-store", "-f", "json", "--max-samples", "200", *GIVEN)
    assert analyzed.code == 0 and _thresholds(analyzed.stdout) == EXPECTED
    checked = run_cli("check", store, "-f", "json", *GIVEN)
    assert checked.code == 1 and _thresholds(checked.stdout) == EXPECTED
    compared = json.loads(run_cli("compare", store, store, "-f", "json", *GIVEN).stdout)
    assert {key: compared["checkpoints"][0]["thresholds"][key] for key in EXPECTED} == EXPECTED
