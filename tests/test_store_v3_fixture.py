"""The frozen schema-3 store: this satcli must read it and report exactly the numbers recorded when it was made."""

from __future__ import annotations

import json

import h5py
import pytest
from conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "store_v3.h5"
EXPECTED = json.loads((REPO / "tests" / "fixtures" / "store_v3.report.json").read_text())


def test_schema_3_store_reports_its_recorded_numbers(run_cli) -> None:
    with h5py.File(FIXTURE, "r") as f:
        assert f.attrs["schema_version"] == 3
        for group in f["checkpoints/0000/layers"].values():
            assert set(group.keys()) == {"mean", "eigenvalues"}
    result = run_cli("report", FIXTURE, "-f", "json")
    assert result.code == 0, result.stderr
    got = json.loads(result.stdout)
    for key in ("verdict", "average_saturation", "tail", "output_layer", "thresholds", "sha256"):
        assert got[key] == EXPECTED[key], key
    for mine, theirs in zip(got["layers"], EXPECTED["layers"], strict=True):
        assert {k: mine[k] for k in ("name", "width", "samples", "k", "flags")} == {
            k: theirs[k] for k in ("name", "width", "samples", "k", "flags")
        }
        assert mine["saturation"] == pytest.approx(theirs["saturation"], rel=1e-12)
