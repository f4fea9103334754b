"""core/affine.py: an affine layer's moments and eigenvalues from its input's, against numpy float64 on the
outputs themselves (y = x W + b formed in float64) and a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from satcli.core.affine import affine_moments
from satcli.core.moments import Moments, batch_moments


def _reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, M2, eigenvalues of M2 descending) of y = x W + b, all numpy/scipy float64."""
    y = x @ w + b
    centered = y - y.mean(axis=0)
    m2 = centered.T @ centered
    return y.mean(axis=0), m2, scipy.linalg.eigvalsh(m2)[::-1]


def test_hand_case() -> None:
    # x = 0, 1, 2 through W = [1, 2], b = [3, -1]: y = (3, -1), (4, 1), (5, 3); mean (4, 1);
    # M2 = sum of outer products of (-1, -2), (0, 0), (1, 2) = [[2, 4], [4, 8]], eigenvalues 10 and 0.
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    moments, eigs = affine_moments(batch_moments(x), torch.tensor([[1.0, 2.0]]), torch.tensor([3.0, -1.0]))
    assert moments.n == 3
    np.testing.assert_allclose(moments.mean.numpy(), [4.0, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(moments.m2.numpy(), [[2.0, 4.0], [4.0, 8.0]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(eigs.numpy(), [10.0, 0.0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("rank", [7, 4])  # full rank, and an input whose columns repeat (singular M2(x))
def test_matches_numpy_on_the_outputs(rank: int) -> None:
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(400, rank)) @ rng.normal(size=(rank, 7)) * np.geomspace(3, 0.1, 7) + 5
    w = rng.normal(size=(7, 30))
    b = rng.normal(size=30) * 10
    mean, m2, want = _reference(x, w, b)
    moments, eigs = affine_moments(batch_moments(torch.from_numpy(x)), torch.from_numpy(w), torch.from_numpy(b))
    np.testing.assert_allclose(moments.mean.numpy(), mean, rtol=1e-12, atol=0)
    assert np.linalg.norm(moments.m2.numpy() - m2) <= 1e-12 * np.linalg.norm(m2)
    np.testing.assert_array_equal(moments.m2.numpy(), moments.m2.numpy().T)
    np.testing.assert_allclose(eigs.numpy(), np.clip(want, 0, None), rtol=0, atol=1e-12 * want[0])
    assert np.all(eigs.numpy()[7:] == 0.0)  # the output lies in an affine subspace of dimension d_in


def test_float32_weights_and_no_bias() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    w = rng.normal(size=(3, 8)).astype(np.float32)
    mean, m2, want = _reference(x, w.astype(np.float64), np.zeros(8))
    moments, eigs = affine_moments(batch_moments(torch.from_numpy(x)), torch.from_numpy(w), None)
    np.testing.assert_allclose(moments.mean.numpy(), mean, rtol=1e-12, atol=1e-15)
    assert np.linalg.norm(moments.m2.numpy() - m2) <= 1e-12 * np.linalg.norm(m2)
    np.testing.assert_allclose(eigs.numpy(), np.clip(want, 0, None), rtol=0, atol=1e-12 * want[0])


def test_no_samples_give_zeros() -> None:
    moments, eigs = affine_moments(Moments.empty(3), torch.ones(3, 5), torch.zeros(5))
    assert moments.n == 0
    assert not moments.m2.any() and not eigs.any()
