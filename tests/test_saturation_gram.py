"""Wide layers with fewer samples than width: eigenvalues from the n x n Gram, equal to the covariance's."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from satcli.analyses import saturation
from satcli.analyses.saturation import SaturationAnalysis
from satcli.core import spectral
from satcli.core.spectral import gram_eigenvalues, intrinsic_dimension
from satcli.taps.layers import Layer


def _reference(x: np.ndarray) -> np.ndarray:
    return np.clip(scipy.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1], 0, None)


def _record_eigen_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every matrix the saturation step decomposes from now on, in order."""
    sizes: list[int] = []
    real, real_device = spectral.eigenvalues, saturation.device_eigenvalues

    def recording(cov: np.ndarray) -> np.ndarray:
        sizes.append(int(np.asarray(cov).shape[0]))
        return real(cov)

    def recording_device(m2: torch.Tensor, n: int) -> np.ndarray:
        sizes.append(int(m2.shape[0]))
        return real_device(m2, n)

    monkeypatch.setattr(saturation, "device_eigenvalues", recording_device)
    monkeypatch.setattr(spectral, "eigenvalues", recording)
    return sizes


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
    sizes = _record_eigen_sizes(monkeypatch)
    analysis = SaturationAnalysis(device="cpu")
    layer = Layer("wide", "Linear", "dense", width)
    for part in np.array_split(x, 3):
        analysis.update(layer, torch.from_numpy(part).float().double(), None)
    narrow = Layer("narrow", "Linear", "dense", 4)
    analysis.update(narrow, torch.from_numpy(x[:, :4]), None)  # n > d: the covariance route
    stats = analysis.state()
    assert sizes == [n, 4]  # the 40 x 40 Gram, then the narrow layer's 4 x 4 covariance; never 300 x 300
    np.testing.assert_allclose(stats["wide"].eigenvalues, want, rtol=1e-8, atol=1e-9 * want[0])
    assert intrinsic_dimension(stats["wide"].eigenvalues) == intrinsic_dimension(want) == 8


def test_the_eigen_step_reports_progress_per_layer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from satcli.data import DataOptions, open_data
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.sweep import score_checkpoint
    from satcli.models import LoadedModel

    np.savez(tmp_path / "d.npz", x=np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32))
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    loaded = LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", net, torch.device("cpu"), None, None)
    seen: list[tuple[str, int, int]] = []

    class Advance:
        def __call__(self, count: int) -> None:
            seen.append(("inputs", count, 0))

        def eigen(self, done: int, total: int) -> None:
            seen.append(("eigen", done, total))

    source = open_data(str(tmp_path / "d.npz"), DataOptions(batch_size=8))
    score_checkpoint(loaded, source, AnalysisOptions(), None, on_batch=Advance())
    assert seen == [("inputs", 8, 0), ("inputs", 8, 0), ("inputs", 4, 0), ("eigen", 1, 2), ("eigen", 2, 2)]


def test_more_samples_than_half_the_width_take_the_covariance_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between d/2 and d samples the n x n route saves little: the d x d covariance is decomposed."""
    width, n = 50, 40
    x = np.random.default_rng(4).normal(size=(n, width)) * np.linspace(2, 0.1, width)
    sizes = _record_eigen_sizes(monkeypatch)
    analysis = SaturationAnalysis(device="cpu")
    analysis.update(Layer("wide", "Linear", "dense", width), torch.from_numpy(x), None)
    got = analysis.state()["wide"].eigenvalues
    assert sizes == [width]
    want = _reference(x)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9 * want[0])


def test_a_non_finite_batch_among_few_samples_is_left_out_of_the_eigenvalues() -> None:
    """A NaN batch (not accumulated) while the rows are still kept: the eigenvalues are those of the finite
    rows, never of rows the accumulator did not count."""
    width = 300
    x = np.random.default_rng(5).normal(size=(40, 6)) @ np.random.default_rng(6).normal(size=(6, width))
    analysis = SaturationAnalysis(device="cpu")
    layer = Layer("wide", "Linear", "dense", width)
    bad = np.full((5, width), np.nan)
    for part in (x[:20], bad, x[20:]):
        analysis.update(layer, torch.from_numpy(part), None)
    stats = analysis.state()["wide"]
    want = _reference(x)
    assert stats.samples == 40 and stats.nonfinite
    np.testing.assert_allclose(stats.eigenvalues, want, rtol=1e-8, atol=1e-9 * want[0])
