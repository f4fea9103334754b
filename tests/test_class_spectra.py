"""class_spectra against numpy float64 on the raw samples: Sigma_B, Sigma_W, pinv and eigenvalues formed
directly (d x d), as METHOD.md sec. 4 states them."""

from __future__ import annotations

import numpy as np
import pytest

from satcli.core.classes import class_spectra
from satcli.core.spectral import eigenvalues
from satcli.core.state import ClassStats, LayerStats


def _inputs(x: np.ndarray, y: np.ndarray) -> tuple[LayerStats, ClassStats]:
    mean = x.mean(axis=0)
    m2 = (x - mean).T @ (x - mean)
    stats = LayerStats(len(x), mean, m2, eigenvalues(m2 / (len(x) - 1)), False)
    shift = x[:10].mean(axis=0)
    labels = np.unique(y)
    sums = np.stack([(x[y == c] - shift).sum(axis=0) for c in labels])
    counts = np.array([(y == c).sum() for c in labels])
    return stats, ClassStats(labels=labels, counts=counts, sums=sums, shift=shift, unlabeled=0)


@pytest.mark.parametrize(("d", "num_classes"), [(12, 4), (40, 10), (6, 9), (300, 10)])
def test_nc1_rank_outliers_and_share_match_numpy(d: int, num_classes: int) -> None:
    rng = np.random.default_rng(d)
    y = rng.integers(0, num_classes, 3000)
    centres = rng.normal(size=(num_classes, d)) * 3
    x = centres[y] + rng.normal(size=(3000, d)) @ np.diag(np.geomspace(2, 0.1, d)) + 50.0
    stats, classes = _inputs(x, y)
    got = class_spectra(stats, classes)

    n = len(x)
    mu = x.mean(axis=0)
    sigma_t = (x - mu).T @ (x - mu) / n
    means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
    weights = np.bincount(y, minlength=num_classes) / n
    sigma_b = (means - mu).T @ ((means - mu) * weights[:, None])
    sigma_w = sigma_t - sigma_b
    values_b = np.linalg.eigvalsh(sigma_b)
    pinv = np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)
    assert got.rank_between == int(np.sum(values_b > 1e-10 * values_b[-1])) == min(num_classes - 1, d)
    assert got.nc1 == pytest.approx(np.trace(sigma_w @ pinv) / num_classes, rel=1e-8)
    assert got.between_share == pytest.approx(np.trace(sigma_b) / np.trace(sigma_t), rel=1e-10)
    edge = np.linalg.eigvalsh(sigma_w)[-1]
    assert got.outliers == int(np.sum(np.linalg.eigvalsh(sigma_t) > edge))


@pytest.mark.parametrize("kind", ["spread", "low rank", "clustered top", "top orthogonal to ones"])
def test_largest_eigenvalue_of_a_wide_layer_matches_numpy(kind: str) -> None:
    """Wide layers take Sigma_W's largest eigenvalue from Lanczos on M2 / n - A^T A (never formed); clustered
    tops fall back to LAPACK."""
    from satcli.core.classes import LANCZOS_MIN_WIDTH, _largest_within

    d = LANCZOS_MIN_WIDTH + 200
    rng = np.random.default_rng(7)
    if kind == "spread":
        a = rng.normal(size=(2 * d, d))
        matrix = a.T @ a / (2 * d)
    elif kind == "low rank":
        a = rng.normal(size=(9, d))
        matrix = a.T @ a
    elif kind == "clustered top":
        matrix = np.diag(np.r_[np.full(5, 3.0), np.linspace(0.0, 3.0 - 1e-7, d - 5)])
    else:
        v = np.zeros(d)
        v[:2] = [2**-0.5, -(2**-0.5)]
        matrix = 5.0 * np.outer(v, v) + np.diag(np.linspace(0.0, 1.0, d))
    want = np.linalg.eigvalsh(matrix)[-1]
    offsets, n = rng.normal(size=(3, d)) * 0.1, 7.0  # Sigma_W = matrix = M2 / n - A^T A
    assert _largest_within((matrix + offsets.T @ offsets) * n, offsets, n) == pytest.approx(want, rel=1e-12)
