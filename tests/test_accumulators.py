"""Streaming covariance against numpy float64 on the same activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satcli.accumulators import CovarianceAccumulator, Moments, batch_moments, covariance, merge_moments
from satcli.spectral import eigenvalues, intrinsic_dimension


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
