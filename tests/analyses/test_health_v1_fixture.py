"""A frozen store whose health state is version 1 (with the per-unit count of samples > 0 that version 2 drops):
this satcli scores it to the recorded numbers and merges its state."""

from __future__ import annotations

import json

import h5py
import numpy as np
from conftest import REPO

from satcli.analyses.health import HealthAnalysis, HealthOptions
from satcli.store.reader import read_store

FIXTURE = REPO / "tests" / "fixtures" / "health_v1.h5"
EXPECTED = json.loads((REPO / "tests" / "fixtures" / "health_v1.report.json").read_text())


def test_version_1_health_reports_its_recorded_numbers(run_cli) -> None:
    with h5py.File(FIXTURE, "r") as f:
        group = f["checkpoints/0000/layers/000/health"]
        assert group.attrs["encoding_version"] == 1 and "positive" in group
    result = run_cli("report", FIXTURE, "-f", "json")
    assert result.code == 0, result.stderr
    got = json.loads(result.stdout)
    assert [layer["health"] for layer in got["layers"]] == [layer["health"] for layer in EXPECTED["layers"]]
    assert any(layer["health"]["dead"] > 0 for layer in got["layers"])  # the fixture has dead units to lose
    assert [layer["flags"] for layer in got["layers"]] == [layer["flags"] for layer in EXPECTED["layers"]]


def test_version_1_health_merges_into_version_2_sums() -> None:
    _, (checkpoint,) = read_store(FIXTURE)
    with h5py.File(FIXTURE, "r") as f:
        raw = f["checkpoints/0000/layers/000/health"]
        maximum, abs_sum, samples = raw["maximum"][()], raw["abs_sum"][()], int(raw.attrs["samples"])
    element = checkpoint.layers[0].extras["health"]
    analysis = HealthAnalysis(HealthOptions(), "cpu")
    analysis.merge({"a": element})
    analysis.merge({"a": element})
    state = analysis.state()["a"]
    assert set(state) == {"maximum", "abs_sum", "samples", "tau"}
    assert np.array_equal(state["maximum"], maximum) and state["samples"] == 2 * samples
    np.testing.assert_array_equal(state["abs_sum"], 2 * abs_sum)
