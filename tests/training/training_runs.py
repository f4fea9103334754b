"""Short real training runs on digits (seconds, once per session) recorded with satcli.Monitor.

A helper module, not a conftest: a second conftest.py would shadow tests/conftest.py for `from conftest import`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import satcli
from satcli.data import DataOptions, open_data

EPOCHS = 6


@dataclass(frozen=True)
class TrainedRun:
    """A trajectory store written by a Monitor and the final training loss of each epoch."""

    store: Path
    losses: list[float]


def mlp(hidden: list[int]) -> nn.Sequential:
    """Flatten, Linear -> ReLU per hidden width, Linear to 10 logits (digits are 1 x 8 x 8)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train_with_monitor(model: nn.Module, store: Path, epochs: int = EPOCHS) -> TrainedRun:
    """Adam on the digits training split, one Monitor checkpoint per epoch (step = epoch)."""
    source = open_data("digits", DataOptions(split="train", batch_size=64, max_samples=640))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    with satcli.Monitor(model, store=store) as monitor:
        for epoch in range(epochs):
            for x, y in source.batches():
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            losses.append(float(loss.detach()))
            monitor.checkpoint(step=epoch, loss=losses[-1])
    return TrainedRun(store, losses)


@functools.cache
def trained_runs() -> dict[str, TrainedRun]:
    """A deliberately narrow MLP (64 -> 4 -> 4 -> 10) and a wide one (64 -> 64 x 3 -> 10), trained once."""
    folder = Path(tempfile.mkdtemp(prefix="satcli-training-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: a second thread only adds synchronisation on a shared machine
    try:
        for name, hidden in (("narrow", [4, 4]), ("wide", [64, 64, 64])):
            torch.manual_seed(0)
            runs[name] = train_with_monitor(mlp(hidden), folder / f"{name}.h5")
    finally:
        torch.set_num_threads(threads)
    return runs
