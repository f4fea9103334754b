"""A crash while a checkpoint is appended to a store (docs/store-format.md, Writing): the earlier checkpoints
still read and report exactly as before, and the interrupted one is an incomplete group readers skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from store_helpers import SAMPLES, meta, write_store

from satcli.core.state import LayerMeta, LayerStats
from satcli.store.reader import read_store
from satcli.store.writer import StoreWriter

# x [1,1]: k 2 of 2; y [1,0,0,0]: k 1 of 4; out is the output layer
BEFORE = [("a.pt", {"x": [1, 1], "out": [1, 0]}), ("b.pt", {"y": [1, 0, 0, 0], "out": [1, 0]})]
WIDTH, INPUTS = 256, 4000  # the appended checkpoint stores 4000 x 256 float32 activations (about 4 MB)

# Appends one checkpoint with activations; `kill_at` picks the moment of SIGKILL during the commit.
APPEND = """
import os, signal, sys
import h5py, numpy as np
from satcli.core.state import LayerMeta, LayerStats
from satcli.store.writer import StoreWriter
from store_helpers import meta

store, width, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
flush = h5py.File.flush


def flush_then_die(self):
    flush(self)
    if os.path.samefile(self.filename, store):  # the store itself, not the writer's temp file
        os.kill(os.getpid(), signal.SIGKILL)


h5py.File.flush = flush_then_die
layer = LayerMeta("wide", "Linear", "dense", width, 0, "none", "none")
rng = np.random.default_rng(0)
rows = rng.standard_normal((inputs, width)).astype(np.float32)
with StoreWriter(store, {"command": "test"}, append=True) as writer:
    ckpt = writer.begin_checkpoint(meta("c.pt"), [layer], store_activations=True)
    for block in np.array_split(rows, 8):
        ckpt.append({"wide": block}, None)
    x = rows.astype(np.float64)
    m2 = (x - x.mean(0)).T @ (x - x.mean(0))
    ckpt.finish({"wide": LayerStats(inputs, x.mean(0), m2, np.linalg.eigvalsh(m2)[::-1], False)}, [], num_inputs=inputs)
print("committed")
"""


def _reported(run_cli, store: Path) -> str:
    result = run_cli("report", store, "-f", "jsonl")
    assert result.code == 0, result.stderr
    return result.stdout


def _assert_interrupted(run_cli, store: Path, before: str) -> None:
    """Earlier checkpoints as before; group 0002 present but incomplete, skipped and named as such."""
    assert [c.meta.model_path for c in read_store(store)[1]] == ["a.pt", "b.pt"]
    assert _reported(run_cli, store) == before
    with h5py.File(store, "r") as file:
        assert sorted(file["checkpoints"]) == ["0000", "0001", "0002"]
        assert not bool(file["checkpoints/0002"].attrs["complete"])
    named = run_cli("report", f"{store}:0002")
    assert named.code == 2 and "no finished checkpoint 0002" in named.stderr and "Traceback" not in named.stderr
    # The store takes the next checkpoint after the interrupted group.
    _append_small(store)
    assert [(c.key, c.meta.model_path) for c in read_store(store)[1]] == [
        ("0000", "a.pt"),
        ("0001", "b.pt"),
        ("0003", "d.pt"),
    ]
    assert _reported(run_cli, store).startswith(before)


def _append_small(store: Path) -> None:
    layer = LayerMeta("x", "Linear", "dense", 2, 0, "none", "none")
    with StoreWriter(store, {"command": "test"}, append=True) as writer:
        ckpt = writer.begin_checkpoint(meta("d.pt"), [layer], store_activations=False)
        values = np.array([1.0, 1.0])
        ckpt.finish({"x": LayerStats(SAMPLES, np.zeros(2), np.diag(values) * (SAMPLES - 1), values, False)}, [])


def test_a_writer_killed_between_copy_and_complete_flag_loses_only_its_checkpoint(run_cli, tmp_path: Path) -> None:
    store = write_store(tmp_path / "runs.h5", BEFORE)
    before = _reported(run_cli, store)
    done = subprocess.run(
        [sys.executable, "-c", APPEND, str(store), str(WIDTH), str(INPUTS)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        timeout=300,
    )
    assert done.returncode == -9 and "committed" not in done.stdout, done.stderr
    _assert_interrupted(run_cli, store, before)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []  # the next writer removed the temp


def test_a_copy_that_fails_midway_leaves_earlier_checkpoints_and_an_incomplete_group(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = write_store(tmp_path / "runs.h5", BEFORE)
    before = _reported(run_cli, store)
    copy = h5py.Group.copy

    def copy_then_fail(self, source, dest, *args, **kwargs):  # type: ignore[no-untyped-def]
        copy(self, source, dest, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "copy", copy_then_fail)
    layer = LayerMeta("x", "Linear", "dense", 2, 0, "none", "none")
    with pytest.raises(OSError, match="disk full"), StoreWriter(store, append=True) as writer:
        ckpt = writer.begin_checkpoint(meta("c.pt"), [layer], store_activations=False)
        values = np.array([1.0, 0.0])
        ckpt.finish({"x": LayerStats(SAMPLES, np.zeros(2), np.diag(values) * (SAMPLES - 1), values, False)}, [])
    monkeypatch.undo()
    _assert_interrupted(run_cli, store, before)
