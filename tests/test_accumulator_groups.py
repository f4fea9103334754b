"""Small batches are grouped into one update: same numbers as numpy float64, and a NaN batch inside a
group is still left out on its own (the other batches of the group count)."""

from __future__ import annotations

import numpy as np
import torch

from satcli.core.accumulator import CovarianceAccumulator


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_many_small_batches_match_numpy_and_a_later_in_place_change_is_not_seen() -> None:
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(2000, 10)) * np.geomspace(5, 0.01, 10) + 1e3).astype(np.float32)
    acc = CovarianceAccumulator(10)
    for start in range(0, 2000, 8):
        batch = torch.from_numpy(x[start : start + 8].copy())
        acc.update(batch)
        batch.fill_(-7.0)  # as a ReLU(inplace=True) after the layer would: the accumulator kept its copy
    n, mean, cov = acc.compute()
    reference = x.astype(np.float64)
    assert n == 2000
    assert _rel(mean.numpy(), reference.mean(axis=0)) <= 1e-12
    assert _rel(cov.numpy(), np.cov(reference, rowvar=False)) <= 1e-10


def test_a_nan_batch_inside_a_group_drops_only_itself() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    acc = CovarianceAccumulator(6)
    for start in range(0, 400, 20):
        batch = x[start : start + 20].copy()
        if start == 100:
            batch[3, 2] = np.nan
        acc.update(torch.from_numpy(batch))
    assert acc.nonfinite
    kept = np.concatenate([x[:100], x[120:]]).astype(np.float64)
    n, _, cov = acc.compute()
    assert n == 380
    assert _rel(cov.numpy(), np.cov(kept, rowvar=False)) <= 1e-10
