"""Nearest-neighbour intrinsic dimension through analyze, the store, shards and merge, against cKDTree."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS
from scipy.spatial import cKDTree

from satcli.analyses.neighbours import TwoNNAnalysis, TwoNNOptions
from satcli.store.reader import read_activations, read_store
from satcli.taps.layers import Layer

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"


def run(*args: str) -> str:
    from satcli.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 0
    return buffer.getvalue()


def kdtree_ids(points: np.ndarray, k: int = 20) -> tuple[float, float]:
    """TwoNN (N / sum log r2/r1) and Levina-Bickel (harmonic mean of local MLEs), from cKDTree distances."""
    points = np.unique(points.astype(np.float64), axis=0)
    t, _ = cKDTree(points).query(points, k=k + 1)
    two = len(points) / np.log(t[:, 2] / t[:, 1]).sum()
    local = (k - 1) / np.log(t[:, k : k + 1] / t[:, 1:k]).sum(axis=1)
    return float(two), float(1.0 / np.mean(1.0 / local))


def layers(record: str) -> dict[str, dict]:
    return {layer["name"]: layer for layer in json.loads(record)["layers"]}


def test_twonn_and_mle_match_kdtree_on_stored_activations_and_survives_the_store(tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    live = layers(
        run(
            "analyze",
            str(SENSIBLE),
            "--analysis",
            "twonn",
            "--analysis",
            "mle",
            "--activations",
            "--store",
            str(store),
            "-q",
            "-f",
            "json",
        )
    )
    _, [checkpoint] = read_store(store)
    for name, layer in live.items():
        rows = read_activations(store, checkpoint.key, name)  # dense layers: the samples, float32 as computed
        two, mle = kdtree_ids(rows)
        assert layer["twonn"]["id"] == pytest.approx(two, rel=1e-7)
        assert layer["mle"]["id"] == pytest.approx(mle, rel=1e-7)
        assert layer["twonn"]["reservoir"] == len(rows) and layer["mle"]["k"] == 20
    stored = layers(run("report", str(store), "-f", "json"))
    assert {n: (v["twonn"], v["mle"]) for n, v in stored.items()} == {
        n: (v["twonn"], v["mle"]) for n, v in live.items()
    }


def test_reservoir_is_the_same_whatever_the_batches_and_shards(tmp_path: Path) -> None:
    # a reservoir of 150, fewer than the 599 inputs: the hash chooses
    base = ("analyze", str(SENSIBLE), "--analysis", "twonn:reservoir=150", "--analysis", "mle:reservoir=150")
    base += ("-q", "-f", "json")
    whole = layers(run(*base, "--no-store"))
    small = layers(run(*base, "--no-store", "--batch-size", "37"))
    parts = [tmp_path / f"p{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        run(*base, "--shard", f"{i}/3", "--store", str(part))
    merged = tmp_path / "m.h5"
    run("merge", *map(str, parts), "-o", str(merged))
    sharded = layers(run("report", str(merged), "-f", "json"))
    for name, layer in whole.items():
        assert layer["twonn"]["reservoir"] == 150
        for other in (small, sharded):
            assert other[name]["twonn"] == pytest.approx(layer["twonn"], rel=1e-12)
            assert other[name]["mle"] == pytest.approx(layer["mle"], rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_reservoir_keeps_the_activations_own_values(dtype: torch.dtype) -> None:
    """float32 activations stay float32 in memory (half of float64), exactly the values that came; the state
    (stored as float64) and the estimate are those of the same samples in float64 (cKDTree reference)."""
    layer = Layer(name="l", type="Linear", kind="dense", width=6)
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(2), dtype=dtype)
    analysis = TwoNNAnalysis(TwoNNOptions(reservoir=120))
    for part, index in zip(x.split(70), torch.arange(300).split(70), strict=True):
        analysis.update(layer, part, None, index)
    kept = analysis.layers["l"].rows
    assert kept.dtype == (np.float32 if dtype == torch.float32 else np.float64) and kept.shape == (120, 6)
    assert {tuple(row) for row in kept} <= {tuple(row) for row in x.numpy()}  # the values as they came
    element = analysis.state()["l"]
    rows = element["rows"]  # type: ignore[index]
    assert rows.dtype == np.float64 and np.array_equal(rows, kept.astype(np.float64))
    merged = TwoNNAnalysis(TwoNNOptions(reservoir=120))
    merged.merge({"l": element})  # a float64 state (from a store) joins a float32 reservoir exactly
    assert np.array_equal(merged.layers["l"].rows, rows)
    got = TwoNNAnalysis.score(None, element, {})["twonn"]["id"]  # type: ignore[arg-type, index]
    distances, _ = cKDTree(rows).query(rows, k=3)
    assert got == pytest.approx(len(rows) / np.log(distances[:, 2] / distances[:, 1]).sum(), rel=1e-12)
