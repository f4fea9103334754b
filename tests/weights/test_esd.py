"""Weight spectra (METHOD.md sec. 6) against numpy, the powerlaw package and WeightWatcher itself."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from satcli.weights.esd import eigenvalues, fit_power_law, layer_spectrum, layer_weight_spectra, reading, spectra

from .conftest import REPO, loaded_module


def _heavy_tailed(seed: int, rows: int = 120, cols: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(df=3, size=(rows, cols))


def test_dense_metrics_equal_numpy() -> None:
    w = _heavy_tailed(0)
    s = layer_spectrum("w", "Linear", w)
    assert s.spectral_norm == pytest.approx(np.linalg.norm(w, 2), rel=1e-12)
    assert s.frobenius_norm == pytest.approx(np.linalg.norm(w, "fro"), rel=1e-12)
    assert s.stable_rank == pytest.approx(np.linalg.norm(w, "fro") ** 2 / np.linalg.norm(w, 2) ** 2, rel=1e-12)
    np.testing.assert_allclose(eigenvalues(w), np.sort(np.linalg.eigvalsh(w.T @ w)), rtol=1e-9, atol=1e-9)


def test_conv_esd_pools_the_kernel_position_slices() -> None:
    w = np.random.default_rng(1).standard_normal((6, 4, 3, 3))
    expected = np.sort(
        np.concatenate([np.linalg.eigvalsh(w[:, :, i, j].T @ w[:, :, i, j]) for i in range(3) for j in range(3)])
    )
    np.testing.assert_allclose(eigenvalues(w), expected, rtol=1e-9, atol=1e-12)
    s = layer_spectrum("c", "Conv2d", w)
    assert s.frobenius_norm == pytest.approx(np.linalg.norm(w.ravel()), rel=1e-12)
    assert s.spectral_norm == pytest.approx(max(np.linalg.norm(w[:, :, i, j], 2) for i in range(3) for j in range(3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_equals_the_powerlaw_package(seed: int) -> None:
    """powerlaw 2.0 limits alpha to at most 3 unless told otherwise; WeightWatcher 0.7 and satcli do not."""
    powerlaw = pytest.importorskip("powerlaw")
    evals = eigenvalues(_heavy_tailed(seed))
    ours = fit_power_law(evals)
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = powerlaw.Fit(evals[evals > 1e-5], verbose=False, parameter_ranges={"alpha": [1.0, 100.0]})
    assert ours.alpha == pytest.approx(reference.alpha, abs=1e-9)
    assert ours.xmin == pytest.approx(reference.xmin, rel=1e-12)
    assert ours.ks_distance == pytest.approx(reference.D, abs=1e-9)
    assert ours.num_tail == int(np.sum(evals >= reference.xmin))


def test_mle_of_an_exact_power_law_sample_recovers_alpha() -> None:
    rng = np.random.default_rng(5)
    sample = (1 - rng.random(4000)) ** (-1 / 1.5)  # Pareto with alpha = 2.5, xmin = 1
    assert fit_power_law(sample).alpha == pytest.approx(2.5, abs=0.1)


def test_alpha_equals_weightwatchers_on_dense_layers(trained_mlp: nn.Module) -> None:
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    model = nn.Sequential(trained_mlp.net[1], nn.ReLU(), trained_mlp.net[3], nn.Linear(150, 120))
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = ww.WeightWatcher(model=model).analyze()
    ours = {s.name: s for s, _ in spectra(model)}
    for name, ww_alpha, ww_sr in zip(["0", "2", "3"], details["alpha"], details["stable_rank"], strict=True):
        assert ours[name].alpha == pytest.approx(ww_alpha, abs=0.05)
        assert ours[name].stable_rank == pytest.approx(ww_sr, rel=1e-9)


def test_small_layers_get_a_reason_not_a_fit() -> None:
    s = layer_spectrum("tiny", "Linear", np.random.default_rng(6).standard_normal((10, 16)))
    assert (s.alpha, s.xmin, s.ks_distance, s.num_tail, s.reading) == (None, None, None, None, None)
    assert s.reason == "10 eigenvalues above 1e-05; a power-law fit needs at least 20"
    zero = layer_spectrum("zero", "Linear", np.zeros((30, 30)))
    assert zero.reason is not None and zero.stable_rank == 0.0


def test_reading_follows_weightwatcher() -> None:
    assert [reading(a) for a in (1.5, 2.0, 4.0, 6.0, 6.5)] == [
        "over-fitted",
        "well trained",
        "well trained",
        "well trained",
        "under-trained",
    ]


def test_layer_weight_spectra_for_analyze() -> None:
    model = loaded_module(REPO / "sample_models" / "deep_wide.pt2")
    found = layer_weight_spectra(model, ["net.3", "net.17", "nope"])
    assert list(found) == ["net.3", "net.17", "nope"]
    assert found["net.3"]["alpha"] == pytest.approx(2.4714869, abs=1e-6)
    assert found["net.3"]["stable_rank"] > 1 and found["net.3"]["reason"] is None
    assert found["net.17"]["alpha"] is None and "at least 20" in found["net.17"]["reason"]
    assert set(found["nope"]) == {"reason"}
    lstm = nn.Sequential(nn.LSTM(4, 8, batch_first=True))
    assert "no single weight matrix" in layer_weight_spectra(lstm, ["0"])["0"]["reason"]
