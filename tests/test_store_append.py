"""StoreWriter(append=True): a store grows one committed checkpoint at a time, atomically."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_store import FIXTURE_V1, LAYERS, META, make_stats, temp_files, write_simple

from satcli.core.state import CheckpointMeta
from satcli.errors import SatcliError
from satcli.store.reader import read_activations, read_store
from satcli.store.writer import StoreWriter


def add_checkpoint(path: Path, model: str, n: int = 5, seed: int = 1) -> None:
    """Append one finished checkpoint named `model` with activations of n inputs."""
    rng = np.random.default_rng(seed)
    meta = CheckpointMeta(model, "f" * 64, "export", "digits", {}, {"delta": 0.99})
    with StoreWriter(path, {"command": "analyze"}, append=True) as writer:
        ckpt = writer.begin_checkpoint(meta, LAYERS, store_activations=True)
        ckpt.append({m.name: np.full((n, m.width), float(seed)) for m in LAYERS}, np.arange(n))
        ckpt.finish({m.name: make_stats(rng, m, n) for m in LAYERS}, [])


def test_append_adds_groups_and_keeps_what_was_there(tmp_path: Path) -> None:
    path = write_simple(tmp_path / "run.h5", command="first")
    _, [original] = read_store(path)
    add_checkpoint(path, "b.pt", seed=2)
    add_checkpoint(path, "c.pt", seed=3)
    attrs, checkpoints = read_store(path)
    assert [(c.key, c.meta.model_path) for c in checkpoints] == [
        ("0000", META.model_path),
        ("0001", "b.pt"),
        ("0002", "c.pt"),
    ]
    assert attrs["command"] == "analyze"
    np.testing.assert_array_equal(checkpoints[0].layers[0].stats.m2, original.layers[0].stats.m2)
    assert read_activations(path, "0002", "fc").tolist() == [[3.0] * 3] * 5
    assert temp_files(tmp_path) == []


def test_append_to_a_missing_path_creates_the_store(tmp_path: Path) -> None:
    path = tmp_path / "new.h5"
    add_checkpoint(path, "a.pt")
    assert [c.meta.model_path for c in read_store(path)[1]] == ["a.pt"]


def test_a_failed_append_leaves_the_store_byte_for_byte(tmp_path: Path) -> None:
    path = write_simple(tmp_path / "run.h5")
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(path, append=True) as writer:
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        ckpt.append({m.name: np.ones((4, m.width)) for m in LAYERS}, None)
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_append_refuses_other_files_and_other_schemas(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.h5"
    foreign.write_text("hello")
    with pytest.raises(SatcliError, match="not an HDF5 file"):
        StoreWriter(foreign, append=True)
    older = tmp_path / "older.h5"
    shutil.copyfile(FIXTURE_V1, older)
    with h5py.File(older, "r+") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(SatcliError, match="bad schema_version"):
        StoreWriter(older, append=True)
    newer = tmp_path / "newer.h5"
    shutil.copyfile(FIXTURE_V1, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = 4
    with pytest.raises(SatcliError, match="newer satcli"):
        StoreWriter(newer, append=True)
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(FIXTURE_V1, damaged)
    with h5py.File(damaged, "r+") as f:
        del f["checkpoints"]
    with pytest.raises(SatcliError, match="damaged satcli store: it has no checkpoints group"):
        StoreWriter(damaged, append=True)
    assert foreign.read_text() == "hello"
    assert temp_files(tmp_path) == []
