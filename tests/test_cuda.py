"""The same functions on CUDA as on the CPU: accumulation, eigenvalues, the affine input route and projection
(skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from satcli.analyses.saturation import SaturationAnalysis, device_eigenvalues
from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.projection import Projector
from satcli.taps.layers import AffineInput, Layer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICE = "cuda"


def _data(n: int = 600, d: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)) @ rng.normal(size=(6, d)) + 0.01 * rng.normal(size=(n, d)) + 3.0


@cuda
def test_accumulation_on_cuda_matches_numpy() -> None:
    x = _data()
    acc = CovarianceAccumulator(x.shape[1], DEVICE)
    for part in np.array_split(x, 7):
        acc.update(torch.from_numpy(part).float().to(DEVICE))
    n, mean, cov = acc.compute()
    assert cov.device.type == "cuda"
    assert np.allclose(mean.cpu().numpy(), x.astype(np.float32).astype(np.float64).mean(axis=0), rtol=1e-12)
    reference = np.cov(x.astype(np.float32).astype(np.float64), rowvar=False)
    assert n == x.shape[0]
    assert np.linalg.norm(cov.cpu().numpy() - reference) <= 1e-10 * np.linalg.norm(reference)


@cuda
def test_eigenvalues_on_cuda_match_scipy() -> None:
    x = _data()
    cov = np.cov(x, rowvar=False)
    want = np.clip(scipy.linalg.eigvalsh(cov)[::-1], 0, None)
    got = device_eigenvalues(torch.from_numpy(cov * (len(x) - 1)).to(DEVICE), len(x))  # M2 and n
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * want[0])


@cuda
def test_saturation_state_on_cuda_equals_the_cpu() -> None:
    x = torch.from_numpy(_data()).float()
    layer = Layer("fc", "Linear", "dense", x.shape[1])
    states = []
    for device in ("cpu", DEVICE):
        analysis = SaturationAnalysis(device)
        for part in x.split(100):
            analysis.update(layer, part.to(device), None)
        states.append(analysis.state()["fc"])
    cpu, gpu = states
    assert cpu.samples == gpu.samples
    np.testing.assert_allclose(gpu.eigenvalues, cpu.eigenvalues, rtol=0, atol=1e-10 * cpu.eigenvalues[0])


@cuda
def test_affine_input_route_on_cuda_matches_numpy() -> None:
    """An expanding layer measured through its input on CUDA (core/affine.py): numpy float64 on x W + b."""
    x = _data(300, 6)
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(6, 40)), rng.normal(size=40)
    y = x @ weight + bias
    layer = Layer("up", "Linear", "dense", 40)
    analysis = SaturationAnalysis(device=DEVICE)
    w, b = torch.from_numpy(weight).to(DEVICE), torch.from_numpy(bias).to(DEVICE)
    for part in np.array_split(x, 3):
        rows = torch.from_numpy(part).to(DEVICE)
        analysis.update(layer, rows @ w + b, None, source=AffineInput(rows, w, b))
    assert "up" in analysis.affine
    stats = analysis.state()["up"]
    centered = y - y.mean(axis=0)
    assert np.linalg.norm(stats.m2 - centered.T @ centered) <= 1e-12 * np.linalg.norm(centered.T @ centered)
    want = np.clip(scipy.linalg.eigvalsh(np.cov(y, rowvar=False))[::-1], 0, None)
    np.testing.assert_allclose(stats.eigenvalues, want, rtol=0, atol=1e-12 * want[0])


@cuda
def test_projection_on_cuda_matches_numpy() -> None:
    x = _data(200, 12)
    mean = x.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    basis = vectors[:, ::-1][:, :3].copy()
    projector = Projector(mean, basis)
    z = torch.from_numpy(x).to(DEVICE)
    got = projector.apply(z, channel_dim=1).cpu().numpy()
    want = mean + (x - mean) @ basis @ basis.T
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
