"""satcli.core.projection against numpy float64: eigenspaces, k, projectors (dense, per position, large
mean), the identity at k = d, and the output metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.projection import (
    Eigenspace,
    OutputMetrics,
    check_deltas,
    count_correct,
    fit_eigenspace,
    output_change,
)
from satcli.errors import SatcliError


def samples(n: int, spread: np.ndarray, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    """n samples with independent axes of the given spreads, randomly rotated, around `mean`."""
    rng = np.random.default_rng(seed)
    d = spread.shape[0]
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return mean + (rng.normal(size=(n, d)) * spread) @ rotation.T


def numpy_projection(x: np.ndarray, delta: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(k, mean, P) from two-pass float64 numpy: eigh of the centred covariance, k by the cumulative share."""
    mean = x.mean(axis=0)
    cov = (x - mean).T @ (x - mean) / (len(x) - 1)
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1].clip(0), vectors[:, ::-1]
    share = np.cumsum(values) / values.sum()
    k = int(np.argmax(share >= delta)) + 1
    return k, mean, vectors[:, :k] @ vectors[:, :k].T


def space_of(x: np.ndarray) -> Eigenspace:
    """The eigenspace satcli fits from x's moments, streamed through the real accumulator in two batches."""
    acc = CovarianceAccumulator(x.shape[1])
    for part in np.array_split(x, 2):
        acc.update(torch.from_numpy(part))
    moments = acc.moments
    return fit_eigenspace("layer", "Linear", moments.n, moments.mean.numpy(), moments.m2.numpy())


SPREAD = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05])


@pytest.mark.parametrize("delta", [0.5, 0.9, 0.99, 0.999])
def test_dense_projection_matches_numpy(delta: float) -> None:
    x = samples(400, SPREAD)
    k, mean, p = numpy_projection(x, delta)
    space = space_of(x)
    assert space.k(delta) == k
    z = samples(50, SPREAD, seed=1)
    expected = mean + (z - mean) @ p
    got = space.projector(k).apply(torch.from_numpy(z), -1).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(z).max())


def test_conv_projection_acts_on_every_position() -> None:
    x = samples(300, SPREAD[:6])
    k, mean, p = numpy_projection(x, 0.9)
    space = space_of(x)
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 6, 5, 3))  # (B, C, H, W)
    got = space.projector(k).apply(torch.from_numpy(z), 1).numpy()
    expected = np.empty_like(z)
    for b in range(4):
        for h in range(5):
            for w in range(3):
                expected[b, :, h, w] = mean + p @ (z[b, :, h, w] - mean)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert got.shape == z.shape


def test_large_mean_layer() -> None:
    """Mean 1e3 x the spread: the fit keeps the covariance exact, and the projection centres at the mean."""
    spread = SPREAD[:5]
    x = samples(500, spread, mean=1e3 * spread[0])
    k, mean, p = numpy_projection(x, 0.99)
    space = space_of(x)
    assert space.k(0.99) == k
    np.testing.assert_allclose(space.mean, mean, rtol=1e-12)
    basis = space.projector(k).basis
    np.testing.assert_allclose(basis @ basis.T, p, atol=1e-9)
    z = x[:20]
    got = space.projector(k).apply(torch.from_numpy(z), -1).numpy()
    np.testing.assert_allclose(got - mean, (z - mean) @ p, atol=1e-9 * np.abs(z - mean).max())


def test_k_equal_to_width_is_the_identity() -> None:
    x = samples(200, SPREAD)
    space = space_of(x)
    assert space.k(1.0) == 8
    projector = space.projector(8)
    z = torch.from_numpy(samples(10, SPREAD, seed=2)).float()
    assert projector.is_identity and projector.apply(z, -1) is z


def test_float32_output_keeps_dtype_and_matches_float64_rounding() -> None:
    x = samples(300, SPREAD)
    k, mean, p = numpy_projection(x, 0.9)
    z = torch.from_numpy(samples(30, SPREAD, seed=4)).float()
    got = space_of(x).projector(k).apply(z, -1)
    assert got.dtype == torch.float32
    expected = (mean + (z.double().numpy() - mean) @ p).astype(np.float32)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_dead_layer_projects_to_its_mean() -> None:
    x = np.full((20, 3), 2.5)
    space = fit_eigenspace("dead", "Linear", 20, x.mean(axis=0), np.zeros((3, 3)))
    assert space.k(0.99) == 0
    z = torch.randn(4, 3, dtype=torch.float64)
    np.testing.assert_array_equal(space.projector(0).apply(z, -1).numpy(), np.full((4, 3), 2.5))


def test_undersampled_layer_keeps_at_most_n_minus_1() -> None:
    x = samples(4, SPREAD)  # n = 4 <= d = 8
    assert space_of(x).k(1.0) == 3


def test_non_finite_and_too_few_samples_are_one_line_errors() -> None:
    with pytest.raises(SatcliError, match="non-finite"):
        fit_eigenspace("bad", "Linear", 10, np.zeros(2), np.zeros((2, 2)), nonfinite=True)
    with pytest.raises(SatcliError, match="at least 2"):
        fit_eigenspace("few", "Linear", 1, np.zeros(2), np.zeros((2, 2)))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_deltas_outside_0_1_are_refused(bad: float) -> None:
    with pytest.raises(SatcliError, match=r"delta must be in \(0, 1\]"):
        check_deltas([0.9, bad])


def test_deltas_are_sorted_and_distinct() -> None:
    assert check_deltas([0.99, 0.9, 0.99, 1]) == (0.9, 0.99, 1.0)


def test_output_metrics_match_numpy() -> None:
    rng = np.random.default_rng(5)
    base = [rng.normal(size=(7, 4)) for _ in range(3)]
    out = [b + rng.normal(scale=0.1, size=b.shape) for b in base]
    labels = [rng.integers(-1, 4, size=7) for _ in range(3)]
    metrics = OutputMetrics()
    for o, b, y in zip(out, base, labels, strict=True):
        metrics.update(torch.from_numpy(o), torch.from_numpy(b), torch.from_numpy(y))
    o, b, y = np.concatenate(out), np.concatenate(base), np.concatenate(labels)
    change = math.sqrt(((o - b) ** 2).sum()) / math.sqrt((b**2).sum())
    assert metrics.change == pytest.approx(change, rel=1e-12)
    known = y >= 0
    assert metrics.accuracy == pytest.approx((o.argmax(axis=1) == y)[known].mean(), abs=0)


def test_output_change_edge_cases() -> None:
    assert output_change(0.0, 0.0) == 0.0
    assert output_change(1.0, 0.0) == math.inf
    assert output_change(4.0, 16.0) == 0.5


def test_accuracy_needs_one_row_of_scores_per_input() -> None:
    with pytest.raises(SatcliError, match="one row of class scores per input"):
        count_correct(torch.zeros(3, 2, 5), torch.zeros(3, dtype=torch.int64))


def test_projection_leaves_its_input_unchanged() -> None:
    x = samples(100, SPREAD)
    z = torch.from_numpy(samples(10, SPREAD, seed=6))
    before = z.clone()
    space_of(x).projector(3).apply(z, -1)
    torch.testing.assert_close(z, before, rtol=0, atol=0)
