"""`satcli report`: re-scoring a store gives analyze's numbers, any threshold matches scipy, bad stores fail cleanly."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.linalg
from conftest import SAMPLE_MODELS
from store_helpers import sample_store, write_store

from satcli.core.verdict import ThresholdOverrides, Thresholds
from satcli.errors import SatcliError
from satcli.store.reader import read_store
from satcli.store.rescore import (
    StoreRef,
    load_checkpoints,
    looks_like_store,
    parse_store_ref,
    rescore,
    resolve_thresholds,
)

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"


def k_reference(cov: np.ndarray, delta: float) -> int:
    """k from scipy's eigenvalues in float64: the first prefix whose share reaches delta."""
    values = np.clip(scipy.linalg.eigvalsh(cov), 0.0, None)[::-1]
    shares = np.cumsum(values) / values.sum()
    return int(np.flatnonzero(shares >= delta)[0]) + 1


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("threshold", [None, "0.9"])
def test_report_gives_exactly_what_analyze_gave(run_cli, tmp_path: Path, threshold: str | None) -> None:
    store = tmp_path / "s.h5"
    extra = [] if threshold is None else ["--threshold", threshold]
    analyzed = run_cli("analyze", SENSIBLE, "--store", store, "--no-activations", "-q", "-f", "json", *extra)
    assert analyzed.code == 0, analyzed.stderr
    reported = run_cli("report", store, "-f", "json", *extra)
    assert reported.code == 0, reported.stderr
    a, r = json.loads(analyzed.stdout), json.loads(reported.stdout)
    assert [x["name"] for x in r["layers"]] == [x["name"] for x in a["layers"]]
    for la, lr in zip(a["layers"], r["layers"], strict=True):
        assert lr == la
    assert r == a  # average, tail, verdict, thresholds, options (num_inputs included), sha256, store path


def test_report_at_0999_matches_scipy_on_the_stored_covariance(run_cli) -> None:
    store = sample_store("deep_wide")
    result = run_cli("report", store, "--threshold", "0.999", "-f", "json")
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        expected = {}
        for key in sorted(layers, key=int):
            group = layers[key]
            width = int(group.attrs["width"])
            cov = group["m2"][()] / (int(group.attrs["samples"]) - 1)
            expected[str(group.attrs["name"])] = (k_reference(cov, 0.999), width)
    got = {x["name"]: (x["k"], x["width"]) for x in record["layers"]}
    assert got == expected
    for layer in record["layers"]:
        assert layer["saturation"] == expected[layer["name"]][0] / expected[layer["name"]][1]
    saturations = [k / w for k, w in expected.values()]
    assert record["average_saturation"] == pytest.approx(np.mean(saturations[:-1]), rel=1e-15)
    assert record["thresholds"]["delta"] == 0.999
    # The stored default run had smaller k everywhere: a higher delta never lowers k.
    default = json.loads(run_cli("report", store, "-f", "json").stdout)
    assert all(lo["k"] <= hi["k"] for lo, hi in zip(default["layers"], record["layers"], strict=True))


def test_rescore_hand_computed(tmp_path: Path) -> None:
    # eigenvalues 4,3,2,1 (total 10): shares .4 .7 .9 1.0 -> k=4 at delta .99, k=3 at .9, k=2 at .7
    store = write_store(tmp_path / "h.h5", [("m.pt", {"a": [4, 3, 2, 1], "b": [1, 0, 0, 0], "out": [1, 1]})])
    [loaded] = load_checkpoints(StoreRef(store))
    result = rescore(loaded.checkpoint, Thresholds(delta=0.9))
    assert [(s.name, s.k, s.saturation) for s in result.layers] == [("a", 3, 0.75), ("b", 1, 0.25), ("out", 2, 1.0)]
    assert result.verdict.average == 0.5
    assert result.options["num_inputs"] == 100
    at_07 = rescore(loaded.checkpoint, Thresholds(delta=0.7, under_threshold=0.3))
    assert [s.k for s in at_07.layers] == [2, 1, 2]  # out: shares .5, 1.0
    assert at_07.verdict.average == (0.5 + 0.25) / 2
    assert at_07.verdict.underparameterized


def test_thresholds_resolve_override_then_stored_then_default(tmp_path: Path) -> None:
    stored = Thresholds(delta=0.95, tail_threshold=0.1, max_tail=3, under_threshold=0.5)
    store = write_store(tmp_path / "t.h5", [("m.pt", {"a": [1, 1]})], thresholds=stored)
    [loaded] = load_checkpoints(StoreRef(store))
    assert resolve_thresholds(loaded.checkpoint, ThresholdOverrides()) == stored
    assert resolve_thresholds(loaded.checkpoint, ThresholdOverrides(max_tail=0)) == Thresholds(0.95, 0.1, 0, 0.5)
    with pytest.raises(SatcliError, match=r"delta must be in \(0, 1\]"):
        resolve_thresholds(loaded.checkpoint, ThresholdOverrides(delta=0.0))


def test_store_refs_and_selection(tmp_path: Path) -> None:
    store = write_store(tmp_path / "runs.h5", [("a.pt", {"x": [1, 0]}), ("b.pt", {"x": [1, 1]})])
    assert parse_store_ref(f"{store}:1") == StoreRef(store, "1")
    assert parse_store_ref(str(store)) == StoreRef(store)
    both = load_checkpoints(StoreRef(store))
    assert [c.label for c in both] == [f"{store}:0000", f"{store}:0001"]
    [second] = load_checkpoints(parse_store_ref(f"{store}:0001"))
    assert second.checkpoint.meta.model_path == "b.pt"
    with pytest.raises(SatcliError, match="no finished checkpoint 7"):
        load_checkpoints(parse_store_ref(f"{store}:7"))
    odd = tmp_path / "odd:2"  # an existing file whose name ends like a key is taken whole
    shutil.copy(store, odd)
    assert parse_store_ref(str(odd)) == StoreRef(odd)
    assert looks_like_store(str(store)) and looks_like_store(f"{store}:1") and looks_like_store("missing.h5")
    assert not looks_like_store(str(SENSIBLE))


def test_report_formats_and_several_checkpoints(run_cli, tmp_path: Path) -> None:
    store = write_store(
        tmp_path / "runs.h5", [("a.pt", {"x": [3, 1], "o": [1, 0]}), ("b.pt", {"x": [1, 1], "o": [1, 0]})]
    )
    lines = run_cli("report", store, "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line)["model"] for line in lines] == ["a.pt", "b.pt"]
    # x: eigenvalues 3,1 -> share .75 < .99 so k=2; with delta .75, k=1
    assert [json.loads(line)["layers"][0]["k"] for line in lines] == [2, 2]
    low = run_cli("report", f"{store}:0", "--threshold", "0.75", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(low.stdout)))
    assert [(r["model"], r["layer"], r["k"], r["saturation"]) for r in rows] == [
        ("a.pt", "x", "1", "0.5"),
        ("a.pt", "o", "1", "0.5"),
    ]
    table = run_cli("report", f"{store}:1")
    assert table.code == 0
    assert "b.pt" in table.stdout and "a.pt" not in table.stdout and "delta 0.99" in table.stdout


def test_report_of_a_future_schema_is_one_line(run_cli, tmp_path: Path) -> None:
    store = shutil.copy(sample_store("narrow"), tmp_path / "future.h5")
    with h5py.File(store, "r+") as f:
        f.attrs["schema_version"] = 99
    line = one_line_error(run_cli("report", store))
    assert "newer satcli (schema 99)" in line


@pytest.mark.parametrize("kind", ["text", "hdf5", "missing", "directory"])
def test_report_of_a_non_store_is_one_line(run_cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.h5"
    if kind == "text":
        path.write_text("hello")
    elif kind == "hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(3)
    elif kind == "directory":
        path.mkdir()
    line = one_line_error(run_cli("report", path))
    assert str(path) in line
    assert {"text": "not an HDF5 file", "hdf5": "not a satcli store", "missing": "not found", "directory": "directory"}[
        kind
    ] in line


def test_report_of_a_model_file_is_one_line(run_cli) -> None:
    assert "not an HDF5 file" in one_line_error(run_cli("report", SENSIBLE))


def test_incomplete_store_has_nothing_to_report(run_cli, tmp_path: Path) -> None:
    store = write_store(tmp_path / "i.h5", [("a.pt", {"x": [1, 0]})])
    with h5py.File(store, "r+") as f:
        f["checkpoints/0000"].attrs["complete"] = False
    assert read_store(store)[1] == []
    assert "no finished checkpoint" in one_line_error(run_cli("report", store))


def test_report_takes_checkpoint_and_quiet_like_plot_and_analyze(run_cli, tmp_path: Path) -> None:
    # x [1,1]: k 2 of 2 (100%); y [1,0,0,0]: k 1 of 4 (25%); out is the output layer
    runs = write_store(
        tmp_path / "runs.h5", [("a.pt", {"x": [1, 1], "out": [1, 0]}), ("b.pt", {"y": [1, 0, 0, 0], "out": [1, 0]})]
    )
    both = run_cli("report", runs, "-f", "jsonl", "-q")
    assert both.code == 0 and [json.loads(line)["model"] for line in both.stdout.splitlines()] == ["a.pt", "b.pt"]
    one = run_cli("report", runs, "--checkpoint", "0001", "-f", "json")
    assert one.code == 0, one.stderr
    [record] = [json.loads(line) for line in one.stdout.splitlines()]
    assert record["model"] == "b.pt" and record["average_saturation"] == pytest.approx(0.25)
