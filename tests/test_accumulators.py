"""Streaming covariance against numpy float64 on the same activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.blocks import float64_sums
from satcli.core.moments import Moments, batch_moments, covariance, merge_moments
from satcli.core.spectral import eigenvalues, intrinsic_dimension


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _feed(x: np.ndarray, batch: int, dtype: torch.dtype = torch.float32) -> CovarianceAccumulator:
    acc = CovarianceAccumulator(x.shape[1])
    t = torch.from_numpy(x).to(dtype)
    for start in range(0, len(t), batch):
        acc.update(t[start : start + batch])
    return acc


@pytest.fixture
def activations() -> np.ndarray:
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(24, 24)) * np.linspace(3, 0.01, 24)
    return (rng.normal(size=(1000, 24)) @ mix + rng.normal(size=24) * 5).astype(np.float32)


def test_covariance_matches_numpy_float64(activations: np.ndarray) -> None:
    acc = _feed(activations, 64)
    n, mean, cov = acc.compute()
    reference = activations.astype(np.float64)
    assert n == 1000
    assert _rel(mean.numpy(), reference.mean(axis=0)) <= 1e-12
    assert _rel(cov.numpy(), np.cov(reference, rowvar=False)) <= 1e-10


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
def test_batch_size_invariance(activations: np.ndarray, batch: int) -> None:
    reference = np.cov(activations.astype(np.float64), rowvar=False)
    _, _, cov = _feed(activations, batch).compute()
    assert _rel(cov.numpy(), reference) <= 1e-10
    expected_k = intrinsic_dimension(np.linalg.eigvalsh(reference)[::-1], 0.99)
    assert intrinsic_dimension(eigenvalues(cov.numpy()), 0.99) == expected_k


def test_order_invariance(activations: np.ndarray) -> None:
    shuffled = activations[np.random.default_rng(5).permutation(len(activations))]
    _, _, a = _feed(activations, 50).compute()
    _, _, b = _feed(shuffled, 33).compute()
    assert _rel(a.numpy(), b.numpy()) <= 1e-12


def test_merged_halves_equal_one_pass(activations: np.ndarray) -> None:
    whole = _feed(activations, 100)
    first, second = _feed(activations[:377], 64), _feed(activations[377:], 64)
    first.merge(second)
    assert first.n == whole.n
    np.testing.assert_allclose(first.compute()[1].numpy(), whole.compute()[1].numpy(), rtol=1e-12, atol=0)
    assert _rel(first.compute()[2].numpy(), whole.compute()[2].numpy()) <= 1e-12


def test_merge_with_empty_is_identity(activations: np.ndarray) -> None:
    m = batch_moments(torch.from_numpy(activations))
    empty = Moments.empty(activations.shape[1])
    assert merge_moments(empty, m) is m
    assert merge_moments(m, empty) is m


def test_large_mean_stress() -> None:
    """Mean 1e6, unit spread: E[xx^T] - mm^T in float32 is garbage, the Chan merge is exact."""
    rng = np.random.default_rng(2)
    x = (1e6 + rng.normal(size=(4096, 8)) * np.array([1, 1, 1, 1, 0.5, 0.5, 0.1, 0.1])).astype(np.float32)
    reference = np.cov(x.astype(np.float64), rowvar=False)
    _, _, cov = _feed(x, 256).compute()
    assert _rel(cov.numpy(), reference) <= 1e-10

    t = torch.from_numpy(x)
    naive = (t.T @ t) / len(t) - torch.outer(t.mean(0), t.mean(0))
    assert _rel(naive.numpy().astype(np.float64), reference) > 1.0  # the failure the merge avoids


def test_float64_activations_are_exact_to_rounding() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 5)) * 1e-3 + 1e3
    _, _, cov = _feed(x, 17, torch.float64).compute()
    assert _rel(cov.numpy(), np.cov(x, rowvar=False)) <= 1e-10


def test_non_finite_batch_sets_flag_and_is_not_accumulated() -> None:
    acc = CovarianceAccumulator(3)
    acc.update(torch.ones(4, 3))
    bad = torch.zeros(2, 3)
    bad[1, 2] = float("nan")
    acc.update(bad)
    assert acc.nonfinite
    assert acc.n == 4


def test_reset_and_shape_checks() -> None:
    acc = CovarianceAccumulator(2)
    acc.update(torch.randn(5, 2))
    acc.reset()
    assert acc.n == 0 and not acc.nonfinite
    assert torch.equal(covariance(acc.moments), torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError):
        acc.update(torch.randn(5, 3))
    with pytest.raises(ValueError):
        acc.merge(CovarianceAccumulator(3))


def test_covariance_below_two_samples_is_zero() -> None:
    acc = CovarianceAccumulator(2)
    acc.update(torch.tensor([[1.0, 2.0]]))
    assert acc.compute()[0] == 1
    assert not acc.compute()[2].any()


def _rel64(x: np.ndarray, acc: CovarianceAccumulator) -> tuple[float, float]:
    n, mean, cov = acc.compute()
    assert n == len(x)
    return _rel(mean.numpy(), x.mean(axis=0)), _rel(cov.numpy(), np.cov(x, rowvar=False))


@pytest.mark.parametrize(("width", "batch"), [(4, 10_000), (40, 1000)])  # narrow path (d*d <= rows), wide path
def test_first_sample_far_from_the_rest_stays_exact(width: int, batch: int) -> None:
    """One first sample 3e5 standard deviations away, then a million ordinary ones.

    A shift fixed at the first batch's mean would lose about 1e-9 here (the cancellation in
    S_xx - s s^T / n grows with N / n_first); the accumulator moves the shift to the data instead.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_000_000, width)).astype(np.float32)
    x[0] = 3e5
    acc = CovarianceAccumulator(width)
    acc.update(torch.from_numpy(x[:1]))
    for start in range(1, len(x), batch):
        acc.update(torch.from_numpy(x[start : start + batch]))
    mean_err, cov_err = _rel64(x.astype(np.float64), acc)
    assert mean_err <= 1e-12
    assert cov_err <= 1e-10


def test_narrow_path_spread_far_from_first_batch() -> None:
    """Tight clusters far apart in the narrow (many rows per batch) path, each batch its own cluster."""
    rng = np.random.default_rng(8)
    parts = [c + rng.normal(size=(300, 3)) * 1e-3 for c in (0.0, 5e4, -2e4, 5e4)]
    x = np.concatenate(parts).astype(np.float32).astype(np.float64)
    _, cov_err = _rel64(x, _feed(x.astype(np.float32), 300))
    assert cov_err <= 1e-10


def test_strided_channels_last_view_equals_rows() -> None:
    """A (B, H, W, C) view of an NCHW tensor gives the same moments as its copied (B*H*W, C) rows."""
    t = torch.randn(6, 5, 7, 3, dtype=torch.float32) * 3 + 2
    view = t.movedim(1, -1)
    rows = view.reshape(-1, 5).to(torch.float64).numpy()
    acc = CovarianceAccumulator(5)
    acc.update(view[:2])
    acc.update(view[2:])
    mean_err, cov_err = _rel64(rows, acc)
    assert mean_err <= 1e-12 and cov_err <= 1e-10


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize(("width", "spatial"), [(5, (7, 3)), (40, (16, 16)), (36, (3, 4, 5))])
def test_channelwise_view_of_a_contiguous_output_matches_numpy(
    width: int, spatial: tuple[int, ...], precision: str
) -> None:
    """Channelwise samples of an (N, C, ...) output are read in the output's own order into (C+1, rows)
    blocks: same moments as the copied rows, over several blocks per batch (the 16x16 case), the lower
    triangle (C >= 32), 3-D convolutions and batches far from the first one's mean (the shift moves)."""
    gen = torch.Generator().manual_seed(width)
    scale = torch.logspace(0.5, -2.0, width).view(1, width, *(1,) * len(spatial))
    outputs = [torch.randn(30, width, *spatial, generator=gen) * scale + offset for offset in (0.0, 400.0, -50.0)]
    acc = CovarianceAccumulator(width, precision=precision)
    for out in outputs:
        acc.update(out.movedim(1, -1))
    assert acc._blocks(outputs[0].movedim(1, -1)).channels_first  # the (C+1, rows) blocks are the ones used
    rows = np.concatenate([out.movedim(1, -1).reshape(-1, width).double().numpy() for out in outputs])
    mean_err, cov_err = _rel64(rows, acc)
    assert mean_err <= (1e-12 if precision == "float64" else 1e-6)
    assert cov_err <= (1e-10 if precision == "float64" else 1e-5)


def test_wide_channelwise_batches_are_summed_in_blocks_exactly() -> None:
    """A wide layer (d*d > samples per batch) sums each batch in float64 a few inputs at a time before its
    Gram: several blocks per batch, against numpy; a non-finite value in the last block still leaves the
    batch out."""
    gen = torch.Generator().manual_seed(3)
    width = 80  # 80 x 80 > 64 inputs x 8 x 8 positions; 25 inputs per 1 MiB float64 block
    outputs = [torch.randn(64, width, 8, 8, generator=gen) * 2 + offset for offset in (5.0, 5.5, -300.0)]
    acc = CovarianceAccumulator(width)
    for out in outputs:
        acc.update(out.movedim(1, -1))
    bad = outputs[0].clone()
    bad[-1, 3, 2, 2] = float("inf")
    acc.update(bad.movedim(1, -1))
    assert acc.nonfinite
    rows = np.concatenate([out.movedim(1, -1).reshape(-1, width).double().numpy() for out in outputs])
    mean_err, cov_err = _rel64(rows, acc)
    assert mean_err <= 1e-12 and cov_err <= 1e-10


def test_float64_sums_over_blocks_match_numpy() -> None:
    """Sums over every sample dim, or per input, of a channelwise view spanning 7 blocks of inputs."""
    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(40, 300, 8, 8, generator=gen) * 3 + 1e3).movedim(1, -1)  # 6 inputs per 1 MiB block
    rows = x.double().numpy()
    per_input = float64_sums(x, per_input=True)
    assert per_input.dtype == torch.float64 and per_input.shape == (40, 300)
    np.testing.assert_allclose(per_input.numpy(), rows.sum(axis=(1, 2)), rtol=1e-13)
    np.testing.assert_allclose(float64_sums(x).numpy(), rows.sum(axis=(0, 1, 2)), rtol=1e-13)
    flat = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    copied = float64_sums(flat, per_input=True)
    assert torch.equal(copied, flat) and copied.data_ptr() != flat.data_ptr()  # rows are their own sums, copied


def test_update_after_merge_and_float16(activations: np.ndarray) -> None:
    reference = np.cov(activations.astype(np.float64), rowvar=False)
    first, second = _feed(activations[:300], 50), _feed(activations[300:600], 50)
    first.merge(second)
    for start in range(600, 1000, 80):
        first.update(torch.from_numpy(activations[start : start + 80]))
    assert first.n == 1000
    assert _rel(first.compute()[2].numpy(), reference) <= 1e-10
    half = activations.astype(np.float16)
    acc = _feed(half, 128, torch.float16)
    assert _rel(acc.compute()[2].numpy(), np.cov(half.astype(np.float64), rowvar=False)) <= 1e-10


def test_non_finite_batch_in_the_narrow_path_is_not_accumulated() -> None:
    acc = CovarianceAccumulator(2)
    acc.update(torch.randn(100, 2))
    bad = torch.randn(100, 2)
    bad[5, 0] = float("inf")
    acc.update(bad)
    assert acc.nonfinite and acc.n == 100
    assert torch.isfinite(acc.compute()[2]).all()


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_wide_path_moves_its_shift_when_the_data_drift(precision: str) -> None:
    """Wide-layer blocks go straight into the running sums, each checked against the shift first from its
    own column sums; a drift (each part far from the last) moves the shift before the block's GEMM."""
    rng = np.random.default_rng(9)
    width, batch = 48, 100
    parts = [c + rng.normal(size=(2730, width)) * np.geomspace(1, 1e-2, width) for c in (0.0, 3e3, -1e3)]
    x = np.concatenate(parts).astype(np.float32).astype(np.float64)
    acc = CovarianceAccumulator(width, precision=precision)
    for start in range(0, len(x), batch):
        acc.update(torch.from_numpy(x[start : start + batch].astype(np.float32)))
    mean_err, cov_err = _rel64(x, acc)
    assert mean_err <= (1e-12 if precision == "float64" else 1e-5)
    assert cov_err <= (1e-10 if precision == "float64" else 1e-5)
