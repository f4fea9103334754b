"""The accumulator's moments: a copy that leaves it running (`moments`), or its own sums turned into M2 in place
at the end of a run (`take_moments`), against numpy float64 on the same rows; and what a wide layer holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.blocks import scratch


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _rows(width: int, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(width, width)) * np.geomspace(3, 1e-2, width)
    return (rng.normal(size=(count, width)) @ mix + rng.normal(size=width) * 20).astype(np.float32)


def _fed(x: np.ndarray, batch: int, precision: str = "float64") -> CovarianceAccumulator:
    acc = CovarianceAccumulator(x.shape[1], precision=precision)
    for start in range(0, len(x), batch):
        acc.update(torch.from_numpy(x[start : start + batch]))
    return acc


def _reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=0)
    return x64.mean(axis=0), centered.T @ centered


# (width, batch): narrow (full Gram per batch), wide with the lower triangle over several blocks per batch.
CASES = [(6, 500), (300, 1200), (300, 40)]


@pytest.mark.parametrize(("width", "batch"), CASES)
def test_take_moments_turns_the_sums_into_numpy_m2_in_their_own_storage(width: int, batch: int) -> None:
    x = _rows(width, 3000)
    acc = _fed(x, batch)
    storage = acc._sums.untyped_storage().data_ptr()
    m = acc.take_moments()
    mean, m2 = _reference(x)
    assert m.n == 3000
    assert _rel(m.mean.numpy(), mean) <= 1e-12
    assert _rel(m.m2.numpy(), m2) <= 1e-10
    assert m.m2.is_contiguous() and torch.equal(m.m2, m.m2.T)  # mirrored exactly
    assert m.m2.untyped_storage().data_ptr() == storage  # no d x d copy: the sums became M2


@pytest.mark.parametrize(("width", "batch"), CASES)
def test_moments_is_a_copy_and_the_accumulator_goes_on(width: int, batch: int) -> None:
    x = _rows(width, 3000, seed=1)
    acc = _fed(x[:2000], batch)
    first = acc.moments
    again = acc.moments
    assert first.m2.untyped_storage().data_ptr() != acc._sums.untyped_storage().data_ptr()
    assert torch.equal(first.m2, again.m2) and torch.equal(first.mean, again.mean)
    assert _rel(first.m2.numpy(), _reference(x[:2000])[1]) <= 1e-10
    for start in range(2000, 3000, batch):
        acc.update(torch.from_numpy(x[start : start + batch]))
    mean, m2 = _reference(x)
    later = acc.moments
    assert later.n == 3000 and _rel(later.mean.numpy(), mean) <= 1e-12 and _rel(later.m2.numpy(), m2) <= 1e-10
    assert _rel(first.m2.numpy(), _reference(x[:2000])[1]) <= 1e-10  # the earlier copy did not move
    taken = acc.take_moments()
    assert torch.equal(taken.m2, later.m2) and torch.equal(taken.mean, later.mean)


def test_a_spent_accumulator_refuses_until_reset() -> None:
    x = _rows(40, 600)
    acc = _fed(x, 100)
    acc.take_moments()
    assert acc.n == 600 and not acc.nonfinite
    for use in (
        lambda: acc.update(torch.from_numpy(x[:10])),
        lambda: acc.moments,
        lambda: acc.take_moments(),
        lambda: acc.merge(_fed(x, 100)),
    ):
        with pytest.raises(RuntimeError, match="reset"):
            use()
    acc.reset()
    acc.update(torch.from_numpy(x))
    assert _rel(acc.take_moments().m2.numpy(), _reference(x)[1]) <= 1e-10


def test_take_moments_of_nothing_and_of_one_sample() -> None:
    acc = CovarianceAccumulator(3)
    empty = acc.take_moments()
    assert empty.n == 0 and not empty.m2.any()
    acc.reset()
    acc.update(torch.tensor([[1.0, 2.0, 4.0]]))
    one = acc.take_moments()
    assert one.n == 1 and not one.m2.any() and one.mean.tolist() == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_wide_layer_holds_one_matrix_of_sums(precision: str) -> None:
    """Besides its (d+1)^2 float64 sums a wide layer keeps only d-sized vectors: no second d x d matrix and no
    block buffer of its own between batches."""
    width = 200
    acc = _fed(_rows(width, 2000), 50, precision)
    held = [t for t in vars(acc).values() if isinstance(t, torch.Tensor)]
    assert [tuple(t.shape) for t in held if t.numel() > width + 1 and t is not acc._sums] == []
    assert acc._sums.shape == (width + 1, width + 1)


@pytest.mark.parametrize(("precision", "mean_tol", "m2_tol"), [("float64", 1e-12, 1e-10), ("float32", 1e-6, 1e-5)])
def test_layers_share_one_block_buffer(precision: str, mean_tol: float, m2_tol: float) -> None:
    """Layers are updated one after another, so every accumulator fills the same scratch (and float32 blocks
    form their Gram in one shared matrix): a run of many layers holds one of each, and each layer's moments
    stay exact (numpy reference; float32 blocks within their rounding)."""
    x = _rows(300, 1200)
    first, second = CovarianceAccumulator(300, precision=precision), CovarianceAccumulator(300, precision=precision)
    for start in range(0, 1200, 400):
        for acc in (first, second):
            acc.update(torch.from_numpy(x[start : start + 400]))
    dtype = torch.float64 if precision == "float64" else torch.float32
    for slot in ("rows", "gram"):
        a = scratch(1, dtype, torch.device("cpu"), slot)
        b = scratch(1, dtype, torch.device("cpu"), slot)
        assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    mean, m2 = _reference(x)
    for acc in (first, second):
        assert _rel(acc.moments.mean.numpy(), mean) <= mean_tol and _rel(acc.moments.m2.numpy(), m2) <= m2_tol


def test_merging_parts_far_apart_matches_numpy() -> None:
    """Two tight parts 1e4 apart (and one empty): the in-place merge re-centres first, as Chan's merge."""
    rng = np.random.default_rng(4)
    parts = [c + rng.normal(size=(700, 50)) * np.geomspace(1, 1e-3, 50) for c in (0.0, 1e4)]
    x = np.concatenate(parts).astype(np.float32)
    first, second = _fed(x[:700], 100), _fed(x[700:], 100)
    first.merge(CovarianceAccumulator(50))
    first.merge(second)
    mean, m2 = _reference(x)
    merged = first.moments
    assert merged.n == 1400 and _rel(merged.mean.numpy(), mean) <= 1e-12 and _rel(merged.m2.numpy(), m2) <= 1e-10
    empty = CovarianceAccumulator(50)
    empty.merge_moments(second.moments)
    assert _rel(empty.moments.m2.numpy(), _reference(x[700:])[1]) <= 1e-10


def test_block_means_within_four_deviations_keep_the_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token streams: 256-row blocks whose means stray 2 standard deviations in a few columns (as text positions
    do) keep the float64 shift, so the d x d sums are not re-expressed every block; the moments stay exact
    (numpy reference). A block 10 deviations away still moves it."""
    moves: list[int] = []
    original = CovarianceAccumulator._move_shift
    monkeypatch.setattr(CovarianceAccumulator, "_move_shift", lambda self, s: (moves.append(1), original(self, s)))
    rng = np.random.default_rng(5)
    width, blocks = 300, 12
    x = rng.normal(size=(256 * blocks, width))
    x[:, :5] += np.repeat(rng.choice([-2.0, 2.0], size=(blocks, 5)), 256, axis=0)  # per-block offsets, 5 columns
    x = x.astype(np.float32)
    acc = _fed(x, 1024)
    mean, m2 = _reference(x)
    assert moves == [] and _rel(acc.moments.mean.numpy(), mean) <= 1e-12 and _rel(acc.moments.m2.numpy(), m2) <= 1e-10
    far = np.concatenate([x, x[:256] + 10.0 * x.std(axis=0)]).astype(np.float32)
    m2 = _fed(far, 1024).moments.m2.numpy()  # (its last, small batch is summed here)
    assert moves and _rel(m2, _reference(far)[1]) <= 1e-10
