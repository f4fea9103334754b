"""Wide layers with fewer samples than width: eigenvalues from the n x n Gram, equal to the covariance's."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from satcli.analyses import saturation
from satcli.analyses.saturation import SaturationAnalysis
from satcli.core.spectral import gram_eigenvalues, intrinsic_dimension
from satcli.taps.layers import Layer


def _reference(x: np.ndarray) -> np.ndarray:
    return np.clip(scipy.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1], 0, None)


def test_gram_eigenvalues_match_the_covariance() -> None:
    x = np.random.default_rng(0).normal(size=(30, 200)) @ np.diag(np.linspace(3, 0.1, 200)) + 5.0
    got, want = gram_eigenvalues(x, 200), _reference(x)
    assert got.shape == (200,)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * want[0])
    assert intrinsic_dimension(got) == intrinsic_dimension(want)


def test_a_wide_layer_never_decomposes_its_d_by_d_covariance(monkeypatch: pytest.MonkeyPatch) -> None:
    width, n = 300, 40
    x = np.random.default_rng(1).normal(size=(n, 8)) @ np.random.default_rng(2).normal(size=(8, width))
    want = _reference(x)
    sizes: list[int] = []
    real = saturation.eigenvalues

    def recording(cov: np.ndarray) -> np.ndarray:
        sizes.append(int(np.asarray(cov).shape[0]))
        return real(cov)

    monkeypatch.setattr(saturation, "eigenvalues", recording)
    monkeypatch.setattr("satcli.core.spectral.eigenvalues", recording)
    analysis = SaturationAnalysis("cpu")
    layer = Layer("wide", "Linear", "dense", width)
    for part in np.array_split(x, 3):
        analysis.update(layer, torch.from_numpy(part).float().double(), None)
    narrow = Layer("narrow", "Linear", "dense", 4)
    analysis.update(narrow, torch.from_numpy(x[:, :4]), None)  # n > d: the covariance route
    stats = analysis.state()
    assert sizes == [n, 4]  # the 40 x 40 Gram, then the narrow layer's 4 x 4 covariance; never 300 x 300
    np.testing.assert_allclose(stats["wide"].eigenvalues, want, rtol=1e-8, atol=1e-9 * want[0])
    assert intrinsic_dimension(stats["wide"].eigenvalues) == intrinsic_dimension(want) == 8
