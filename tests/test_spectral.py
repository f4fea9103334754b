"""k, saturation and flags on hand-computed and adversarial spectra, against scipy float64."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from satcli.core.spectral import (
    FLAG_DEAD,
    FLAG_NONFINITE,
    FLAG_UNDERSAMPLED,
    eigenvalues,
    intrinsic_dimension,
    score_layer,
)


def _k_by_hand(eigs: list[float], delta: float) -> int:
    """The definition read literally, with exact rational arithmetic."""
    from fractions import Fraction

    values = sorted((Fraction(v) for v in eigs), reverse=True)
    total = sum(values)
    if total == 0:
        return 0
    running = Fraction(0)
    for k, v in enumerate(values, start=1):
        running += v
        if running / total >= Fraction(delta):
            return k
    return len(values)


@pytest.mark.parametrize(
    ("eigs", "delta", "k"),
    [
        ([4, 3, 2, 1], 0.7, 2),  # share at k=2 is exactly 0.7
        ([4, 3, 2, 1], 0.71, 3),
        ([1, 1, 1, 1], 0.75, 3),  # ties; share at k=3 exactly delta
        ([1, 1, 1, 1], 0.99, 4),
        ([1e6, 1, 1], 0.99, 1),  # one dominant direction
        ([0, 0, 0], 0.99, 0),  # all zero
        ([3, 0, 0], 1.0, 1),
        ([1, 2, 3, 4], 0.7, 2),  # unsorted input
        ([0.5, 0.3, 0.2], 0.8, 2),  # 0.5 + 0.3 rounds below 0.8 in binary floating point
    ],
)
def test_intrinsic_dimension_hand_cases(eigs: list[float], delta: float, k: int) -> None:
    assert intrinsic_dimension(np.array(eigs, dtype=float), delta) == k


def test_intrinsic_dimension_matches_exact_definition_on_random_spectra() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = int(rng.integers(1, 40))
        eigs = list(rng.exponential(size=d) ** rng.uniform(0.5, 4))
        delta = float(rng.choice([0.5, 0.9, 0.99, 0.999]))
        assert intrinsic_dimension(np.array(eigs), delta) == _k_by_hand(eigs, delta)


def test_delta_out_of_range() -> None:
    with pytest.raises(ValueError):
        intrinsic_dimension(np.ones(3), 0.0)
    with pytest.raises(ValueError):
        intrinsic_dimension(np.ones(3), 1.5)


def test_eigenvalues_descending_clipped_and_match_scipy() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(30, 12))
    cov = np.cov(a, rowvar=False)
    ours = eigenvalues(cov)
    reference = scipy.linalg.eigvalsh(cov)[::-1]
    np.testing.assert_allclose(ours, np.clip(reference, 0, None), rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(ours) <= 0)
    singular = np.outer(np.arange(5.0), np.arange(5.0))
    assert (eigenvalues(singular) >= 0).all()


def test_score_layer_normal_case() -> None:
    eigs = np.array([5.0, 3.0, 1.0, 0.5, 0.5])
    score = score_layer("fc", "Linear", 100, np.zeros(5), eigs, 0.9)
    assert score.k == 3  # 9/10 = 0.9
    assert score.saturation == pytest.approx(3 / 5)
    assert score.flags == ()


def test_dead_layer() -> None:
    score = score_layer("fc", "Linear", 100, np.full(4, 0.1), np.zeros(4))
    assert score.k == 0 and score.saturation == 0.0
    assert FLAG_DEAD in score.flags
    assert not score.scored


def test_rounding_noise_of_a_constant_layer_is_dead() -> None:
    score = score_layer("fc", "Linear", 100, np.full(4, 3.0), np.array([1e-30, 0, 0, 0]))
    assert FLAG_DEAD in score.flags


def test_undersampled_caps_k() -> None:
    # 4 samples of a 10-wide layer: the covariance has rank <= 3.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 10))
    eigs = eigenvalues(np.cov(x, rowvar=False)) + 1e-3  # noise that would push k past n - 1
    score = score_layer("fc", "Linear", 4, x.mean(0), eigs, 0.999)
    assert FLAG_UNDERSAMPLED in score.flags
    assert score.k == 3
    assert score.saturation == pytest.approx(0.3)


def test_non_finite_layer_has_no_k() -> None:
    score = score_layer("fc", "Linear", 100, np.zeros(3), np.ones(3), nonfinite=True)
    assert score.k is None and score.saturation is None
    assert score.flags == (FLAG_NONFINITE,)
    assert not score.scored
