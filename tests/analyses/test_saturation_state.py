"""The saturation state: after the run's last batch (`finish`) each layer's m2 is its accumulator's own storage
(one d x d matrix per layer), before it (a Monitor mid-training) a copy; numbers against numpy/scipy float64."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from engine_helpers import run_state

from satcli.analyses.saturation import SaturationAnalysis
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _rows(count: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(width, width)) * np.geomspace(2, 1e-2, width)
    return (rng.normal(size=(count, width)) @ mix + 3).astype(np.float32)


def _check(stats: LayerStats, x: np.ndarray) -> None:
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=0)
    want = np.clip(scipy.linalg.eigvalsh(np.cov(x64, rowvar=False))[::-1], 0, None)
    assert stats.samples == len(x)
    assert _rel(np.asarray(stats.m2), centered.T @ centered) <= 1e-10
    np.testing.assert_allclose(stats.eigenvalues, want, rtol=0, atol=1e-10 * want[0])


LAYERS = [Layer("wide", "Linear", "dense", 96), Layer("narrow", "Linear", "dense", 5)]


def _fed(data: dict[str, np.ndarray], stop: int, start: int = 0) -> SaturationAnalysis:
    analysis = SaturationAnalysis(device="cpu")
    _feed(analysis, data, start, stop)
    return analysis


def _feed(analysis: SaturationAnalysis, data: dict[str, np.ndarray], start: int, stop: int) -> None:
    for first in range(start, stop, 40):  # 40 rows a batch: the 96-wide layer takes the wide path
        for layer in LAYERS:
            analysis.update(layer, torch.from_numpy(data[layer.name][first : min(stop, first + 40)]), None)


@pytest.fixture
def data() -> dict[str, np.ndarray]:
    return {layer.name: _rows(600, int(layer.width or 0), seed) for seed, layer in enumerate(LAYERS)}


def test_after_finish_the_state_holds_the_accumulators_own_sums(data: dict[str, np.ndarray]) -> None:
    analysis = _fed(data, 600)
    sums = {name: acc._sums.numpy() for name, acc in analysis.accumulators.items()}
    analysis.finish(torch.nn.Identity())
    state = analysis.state()
    for name, stats in state.items():
        assert isinstance(stats, LayerStats)
        _check(stats, data[name])
        assert np.shares_memory(stats.m2, sums[name])  # no d x d copy of the moments
    again = analysis.state()
    assert all(again[name] is state[name] for name in state)  # once: a second call does not redo or fail
    with pytest.raises(RuntimeError, match="reset"):
        _feed(analysis, data, 0, 40)
    analysis.reset()
    _feed(analysis, data, 0, 600)
    for name, stats in analysis.state().items():
        _check(stats, data[name])  # type: ignore[arg-type]


def test_before_finish_the_state_is_a_copy_and_accumulating_goes_on(data: dict[str, np.ndarray]) -> None:
    analysis = _fed(data, 400)
    early = analysis.state()
    for name, stats in early.items():
        _check(stats, data[name][:400])  # type: ignore[arg-type]
        assert not np.shares_memory(stats.m2, analysis.accumulators[name]._sums.numpy())  # type: ignore[union-attr]
    _feed(analysis, data, 400, 600)
    for name, stats in analysis.state().items():
        _check(stats, data[name])  # type: ignore[arg-type]
    for name, stats in early.items():
        _check(stats, data[name][:400])  # type: ignore[arg-type]  (the earlier state did not move)


def test_an_analyze_run_with_a_wide_layer_matches_numpy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """engine/run.py's analyze (finish, then the consuming state) on a model whose first layer is wider than
    a batch has rows: eigenvalues, k and the kept m2 against numpy on the same activations."""
    from satcli.data import DataOptions, open_data
    from satcli.engine.options import AnalysisOptions

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 80), torch.nn.Tanh(), torch.nn.Linear(80, 6)).eval()
    x = np.random.default_rng(5).normal(size=(500, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    source = open_data(str(tmp_path / "d.npz"), DataOptions(batch_size=50))
    # Summing the outputs (the 8 -> 80 Linear would otherwise be measured through its input, as
    # tests/analyses/test_saturation_affine.py checks): this test is about the wide accumulator's own path.
    options = AnalysisOptions(store_activations=False, keep_moments=True, analyses=("saturation:affine_inputs=false",))
    state, result = run_state(net, source, options)
    with torch.no_grad():
        first = net[0](torch.from_numpy(x))
        rows = {"0": first.numpy(), "2": net[2](torch.tanh(first)).numpy()}
    for layer, score in zip(state.layers, result.layers, strict=True):
        _check(layer.stats, rows[layer.meta.name])
        eigs = np.clip(scipy.linalg.eigvalsh(np.cov(rows[layer.meta.name].astype(np.float64), rowvar=False)), 0, None)
        shares = np.cumsum(eigs[::-1]) / eigs.sum()
        assert score.k == int(np.searchsorted(shares, 0.99 - 1e-12) + 1)
