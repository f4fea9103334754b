"""`satcli compare` on stores with hand-chosen spectra: side-by-side saturation, the change, averages, verdicts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from store_helpers import write_store

from satcli.core.compare import column_label
from satcli.core.layer_order import merge_layer_order

# Covariance eigenvalues -> k at delta 0.99 (hand-computed) -> saturation
#   A: a [4,3,2,1] shares .4 .7 .9 1 -> k=4, 100%;  b [1,0,0,0] -> k=1, 25%;  out [1,1] -> k=2, 100%
#   B: a [1,1,0,0] -> k=2, 50%;  c [1,0,...] (8 wide) -> k=1, 12.5%;  out [1,1] -> 100%
# averages (output left out): A (1 + .25)/2 = .625 -> underparameterized; B (.5 + .125)/2 = .3125, tail [c]
A_LAYERS = {"a": [4, 3, 2, 1], "b": [1, 0, 0, 0], "out": [1, 1]}
B_LAYERS = {"a": [1, 1, 0, 0], "c": [1, 0, 0, 0, 0, 0, 0, 0], "out": [1, 1]}


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    return write_store(tmp_path / "a.h5", [("a.pt", A_LAYERS)]), write_store(tmp_path / "b.h5", [("b.pt", B_LAYERS)])


def test_compare_json(run_cli, stores: tuple[Path, Path]) -> None:
    a, b = stores
    result = run_cli("compare", a, b, "-f", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(c["label"], c["source"], c["model"]) for c in data["checkpoints"]] == [
        ("A", str(a), "a.pt"),
        ("B", str(b), "b.pt"),
    ]
    assert [c["average_saturation"] for c in data["checkpoints"]] == [0.625, 0.3125]
    assert [c["average_change_pp"] for c in data["checkpoints"]] == [None, -31.25]
    assert [c["verdict"] for c in data["checkpoints"]] == ["underparameterized", "balanced"]
    assert [c["tail"] for c in data["checkpoints"]] == [[], ["c"]]
    rows = {x["name"]: x for x in data["layers"]}
    assert [x["name"] for x in data["layers"]] == ["a", "b", "c", "out"]
    assert rows["a"]["saturation"] == [1.0, 0.5] and rows["a"]["change_pp"] == [None, -50.0]
    assert rows["a"]["k"] == [4, 2]
    assert rows["b"]["present"] == [True, False] and rows["b"]["saturation"] == [0.25, None]
    assert rows["b"]["change_pp"] == [None, None]
    assert rows["c"]["present"] == [False, True] and rows["c"]["saturation"] == [None, 0.125]
    assert rows["out"]["change_pp"] == [None, 0.0]


def test_compare_table(run_cli, stores: tuple[Path, Path]) -> None:
    a, b = stores
    result = run_cli("compare", a, b)
    assert result.code == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["A", str(a), "(a.pt)"] in lines and ["B", str(b), "(b.pt)"] in lines
    assert ["layer", "A", "B", "Δ", "B-A"] in lines
    assert ["a", "100.0%", "50.0%", "-50.0"] in lines
    assert ["b", "25.0%", "-", "-"] in lines
    assert ["c", "-", "12.5%", "-"] in lines
    assert ["out", "100.0%", "100.0%", "+0.0"] in lines
    assert ["average", "62.5%", "31.2%", "-31.2"] in lines  # 31.25 printed with one decimal (half to even)
    assert ["tail", "0", "1", "+1"] in lines
    assert ["verdict", "underparameterized", "balanced"] in lines


def test_compare_csv(run_cli, stores: tuple[Path, Path]) -> None:
    result = run_cli("compare", *stores, "-f", "csv")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    got = [(r["layer"], r["label"], r["present"], r["k"], r["saturation"], r["change_pp"]) for r in rows]
    assert got == [
        ("a", "A", "true", "4", "1.0", ""),
        ("a", "B", "true", "2", "0.5", "-50.0"),
        ("b", "A", "true", "1", "0.25", ""),
        ("b", "B", "false", "", "", ""),
        ("c", "A", "false", "", "", ""),
        ("c", "B", "true", "1", "0.125", ""),
        ("out", "A", "true", "2", "1.0", ""),
        ("out", "B", "true", "2", "1.0", "0.0"),
    ]
    assert {(r["label"], r["average_saturation"], r["average_change_pp"], r["verdict"]) for r in rows} == {
        ("A", "0.625", "", "underparameterized"),
        ("B", "0.3125", "-31.25", "balanced"),
    }


def test_one_store_with_several_checkpoints_and_selection(run_cli, tmp_path: Path) -> None:
    runs = write_store(tmp_path / "runs.h5", [("a.pt", A_LAYERS), ("b.pt", B_LAYERS), ("c.pt", A_LAYERS)])
    whole = json.loads(run_cli("compare", runs, "-f", "json").stdout)
    assert [c["source"] for c in whole["checkpoints"]] == [f"{runs}:0000", f"{runs}:0001", f"{runs}:0002"]
    assert [c["label"] for c in whole["checkpoints"]] == ["A", "B", "C"]
    assert whole["layers"][0]["change_pp"] == [None, -50.0, 0.0]  # every change is from the first (A)
    picked = json.loads(run_cli("compare", f"{runs}:0002", f"{runs}:1", "-f", "json").stdout)
    assert [c["model"] for c in picked["checkpoints"]] == ["c.pt", "b.pt"]


def test_thresholds_reach_the_comparison(run_cli, stores: tuple[Path, Path]) -> None:
    # delta .9: A.a k=3 (.75), A.b 1 (.25); B.a [1,1,0,0] shares .5, 1 -> k=2 (.5); change -25 pp
    data = json.loads(run_cli("compare", *stores, "--threshold", "0.9", "-f", "json").stdout)
    assert data["layers"][0]["saturation"] == [0.75, 0.5] and data["layers"][0]["change_pp"] == [None, -25.0]
    assert data["checkpoints"][0]["thresholds"]["delta"] == 0.9


def test_compare_needs_two_checkpoints(run_cli, stores: tuple[Path, Path]) -> None:
    result = run_cli("compare", stores[0])
    assert result.code == 2 and result.stdout == ""
    assert "at least two checkpoints" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_layer_order_and_labels() -> None:
    assert merge_layer_order([["a", "b", "out"], ["a", "c", "out"]]) == ["a", "b", "c", "out"]
    assert merge_layer_order([["a", "b"], ["x", "a", "b"]]) == ["x", "a", "b"]
    assert merge_layer_order([["a", "b"], ["x", "y"]]) == ["a", "b", "x", "y"]
    assert [column_label(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]


def test_many_checkpoints_at_80_columns_split_into_blocks(run_cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # y's saturation over six checkpoints: 1, 2, 3, 4, 1, 2 of 4; out is the output layer
    patterns = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    runs = write_store(tmp_path / "runs.h5", [(f"e{i}.pt", {"y": p, "out": [1, 0]}) for i, p in enumerate(patterns)])
    monkeypatch.setenv("COLUMNS", "80")
    result = run_cli("compare", runs)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    headers = [line for line in lines if line.lstrip().startswith("layer")]
    assert len(headers) >= 2  # more than one block
    for label in "BCDEF":  # every checkpoint's column and change column survive
        assert any(f"Δ {label}-A" in header for header in headers), label
    y_rows = [line.split() for line in lines if line.startswith("y ")]
    assert len(y_rows) == len(headers)
    assert [cell for row in y_rows for cell in row[2:] if "%" in cell] == ["50.0%", "75.0%", "100.0%", "25.0%", "50.0%"]


def test_an_inconclusive_reason_is_a_line_under_the_table_at_80_columns(run_cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Wider than the store's samples: undersampled, so the verdict is "inconclusive (undersampled: need ...)".
    wide = {"transformer.h.0.mlp.c_fc": [1.0] * 3000, "transformer.h.0.mlp.c_proj": [1.0] * 2000, "out": [1, 1]}
    a, b = write_store(tmp_path / "a.h5", [("a.pt", wide)]), write_store(tmp_path / "b.h5", [("b.pt", wide)])
    monkeypatch.setenv("COLUMNS", "80")
    result = run_cli("compare", a, b)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    # The layer names stay whole (a long verdict in a column squeezed them to one character a line).
    assert any(line.startswith("transformer.h.0.mlp.c_fc ") for line in lines), result.stdout
    assert ["verdict", "inconclusive", "inconclusive"] in [line.split() for line in lines]
    reason = json.loads(run_cli("compare", a, b, "-f", "json").stdout)["checkpoints"][0]["verdict"]
    assert reason.startswith("inconclusive (undersampled") and f"A, B: {reason}" in lines
