"""analyze never replaces another run's checkpoints without --force, refuses STORE:NNNN as a store to write,
and says why it stopped on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from conftest import REPO, SAMPLE_MODELS
from torch import nn

import satcli
from satcli.store.reader import read_store

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
NARROW = SAMPLE_MODELS / "narrow.pt2"
FAST = ("--data", "digits", "--max-samples", "100", "-q")


def _monitor_store(path: Path, checkpoints: int = 6) -> Path:
    """A store holding a Monitor trajectory of `checkpoints` points."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with satcli.Monitor(model, store=path) as monitor:
        for step in range(checkpoints):
            model(torch.randn(40, 64))
            monitor.checkpoint(step=step)
    return path


def _keys(path: Path) -> list[str]:
    return [c.key for c in read_store(path)[1]]


def test_a_trajectory_is_not_replaced_without_force(run_cli: Callable, tmp_path: Path) -> None:
    store = _monitor_store(tmp_path / "keep.h5")
    before = store.read_bytes()
    result = run_cli("analyze", SENSIBLE, *FAST, "--store", store)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force" in lines[0] and "--append" in lines[0] and "6 checkpoint" in lines[0]
    assert store.read_bytes() == before
    assert run_cli("analyze", SENSIBLE, *FAST, "--store", store, "--append").code == 0
    assert _keys(store) == [f"{i:04d}" for i in range(7)]  # the trajectory, then the new checkpoint
    assert run_cli("analyze", SENSIBLE, *FAST, "--store", store, "--force").code == 0
    assert _keys(store) == ["0000"]


def test_a_run_may_replace_its_own_result_but_not_another_models(run_cli: Callable, tmp_path: Path) -> None:
    store = tmp_path / "own.h5"
    assert run_cli("analyze", SENSIBLE, *FAST, "--store", store).code == 0
    assert run_cli("analyze", SENSIBLE, *FAST, "--store", store).code == 0  # the same command and model
    assert _keys(store) == ["0000"]
    refused = run_cli("analyze", NARROW, *FAST, "--store", store)
    assert refused.code == 2 and "--append" in refused.stderr and "analyze of" in refused.stderr
    assert run_cli("analyze", NARROW, *FAST, "--store", store, "--append").code == 0
    assert [Path(c.meta.model_path).name for c in read_store(store)[1]] == ["sensible.pt2", "narrow.pt2"]
    # Both models again: every checkpoint in the store is this run's own.
    assert run_cli("analyze", SENSIBLE, NARROW, *FAST, "--store", store).code == 0
    assert len(_keys(store)) == 2


def test_a_checkpoint_reference_is_no_store_path(run_cli: Callable, tmp_path: Path) -> None:
    target = tmp_path / "x.h5:0001"
    result = run_cli("analyze", SENSIBLE, *FAST, "--store", target)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "x.h5:0001" in result.stderr
    assert not target.exists() and not (tmp_path / "x.h5").exists()


def test_ctrl_c_says_what_happened(tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    cmd = [sys.executable, "-m", "satcli", "analyze", str(NARROW), "--data", "digits", "--store", str(store)]
    run = subprocess.Popen(
        [*cmd, "--batch-size", "4", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "NO_COLOR": "1"},
        # Python installs its Ctrl-C handler only when SIGINT is not ignored (as it may be for a background job).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name != store.name]:  # the store's lock or temp file: scoring
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted; finished results and existing stores are kept")
    assert sorted(tmp_path.iterdir()) == []  # no temp file, no lock, no half-written store
