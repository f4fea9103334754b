"""Spectrum summaries (docs/method.md, "Spectrum summaries") against hand cases and numpy on the covariance of a
layer's hook activations; old stores re-score them from their stored eigenvalues."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

import satcli
from satcli.core.spectrum import effective_rank, participation_ratio, spectral_decay


def _numpy_summary(eigs: np.ndarray) -> dict[str, float]:
    """An independent float64 computation of the three summaries (entropy, squared-sum ratio, polyfit slope)."""
    lam = np.sort(np.clip(eigs, 0, None))[::-1]
    p = lam / lam.sum()
    entropy = -sum(x * np.log(x) for x in p if x > 0)
    top = lam[:100]
    i = np.arange(1, top.size + 1)
    keep = top > 1e-10 * top[0]
    slope = np.polyfit(np.log(i[keep]), -np.log(top[keep]), 1)[0]
    return {
        "effective_rank": float(np.exp(entropy)),
        "participation_ratio": float(lam.sum() ** 2 / (lam**2).sum()),
        "spectral_decay": float(slope),
    }


def test_hand_cases() -> None:
    flat = np.ones(7)
    assert effective_rank(flat) == pytest.approx(7.0, rel=1e-14)
    assert participation_ratio(flat) == pytest.approx(7.0, rel=1e-14)
    assert spectral_decay(flat) == pytest.approx(0.0, abs=1e-14)
    one = np.array([3.0, 0, 0, 0])
    assert effective_rank(one) == 1.0 and participation_ratio(one) == 1.0
    assert spectral_decay(one) is None  # one eigenvalue above the floor: no slope
    for a in (0.5, 1.0, 2.3):
        power = np.arange(1, 51, dtype=np.float64) ** -a
        assert spectral_decay(power) == pytest.approx(a, rel=1e-12)
    # Only the first 100 eigenvalues and those above 1e-10 of the largest enter the slope.
    long = np.concatenate([np.arange(1, 101, dtype=np.float64) ** -1.5, np.full(50, 1e-3)])
    assert spectral_decay(long) == pytest.approx(1.5, rel=1e-12)
    assert spectral_decay(np.array([1.0, 0.5, 1e-12])) == pytest.approx(1.0, rel=1e-12)
    zero = np.zeros(3)
    assert effective_rank(zero) is None and participation_ratio(zero) is None and spectral_decay(zero) is None


def test_against_numpy_on_hook_activations() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6))
    inputs = torch.randn(300, 12) @ torch.randn(12, 12)
    seen: dict[str, list[np.ndarray]] = {"0": [], "2": []}

    def record(name: str, module: nn.Linear, i: tuple[torch.Tensor], o: torch.Tensor) -> None:
        # An expanding Linear is measured through its input, x W^T + b exactly (docs/method.md sec. 1): its
        # reference is that map in float64; the narrowing one sums its float32 outputs.
        exact = module.in_features < module.out_features
        w, b = module.weight.detach().double(), module.bias.detach().double()
        seen[name].append((i[0].detach().double() @ w.T + b if exact else o.detach().double()).numpy())

    hooks = [model[int(n)].register_forward_hook(lambda m, i, o, n=n: record(n, m, i, o)) for n in seen]
    batches = list(inputs.split(64))
    result = satcli.analyze_model(model, batches).to_dict()
    for hook in hooks:
        hook.remove()
    for layer in result["layers"]:
        acts = np.concatenate(seen[layer["name"]])
        eigs = np.linalg.eigvalsh(np.cov(acts, rowvar=False))
        want = _numpy_summary(eigs)
        for key, value in want.items():
            assert layer[key] == pytest.approx(value, rel=1e-9), (layer["name"], key)


def test_old_stores_rescore_them(run_cli) -> None:
    for fixture in ("store_v1.h5", "store_v2.h5"):
        path = REPO / "tests" / "fixtures" / fixture
        result = run_cli("report", path, "-f", "jsonl")
        assert result.code == 0, result.stderr
        with h5py.File(path, "r") as file:
            stored = {str(g.attrs["name"]): g["eigenvalues"][()] for g in file["checkpoints/0000/layers"].values()}
        for layer in json.loads(result.stdout.splitlines()[0])["layers"]:
            want = _numpy_summary(stored[layer["name"]])
            for key, value in want.items():
                assert layer[key] == pytest.approx(value, rel=1e-12), (fixture, layer["name"], key)


def test_columns_are_opt_in(run_cli) -> None:
    path = REPO / "tests" / "fixtures" / "store_v2.h5"
    plain = run_cli("report", path)
    assert "eff.rank" not in plain.stdout
    asked = run_cli("report", path, "--columns", "spectrum")
    assert asked.code == 0, asked.stderr
    assert all(header in asked.stdout for header in ("eff.rank", "PR", "decay"))


def test_min_effective_rank_gate_uses_the_averaged_layers(run_cli) -> None:
    path = REPO / "tests" / "fixtures" / "store_v2.h5"
    with h5py.File(path, "r") as file:
        layers = {str(g.attrs["name"]): g for g in file["checkpoints/0000/layers"].values()}
        shares = {name: effective_rank(g["eigenvalues"][()]) / int(g.attrs["width"]) for name, g in layers.items()}
    averaged = ["features.0", "features.2", "features.5", "head.0"]  # the output layer head.2 is not gated
    lowest = min(shares[name] for name in averaged)
    passing = run_cli("check", path, "--fail-on", "none", "--min-effective-rank", f"{lowest * 0.999:.6f}")
    assert passing.code == 0, passing.stderr
    failing = run_cli("check", path, "--fail-on", "none", "--min-effective-rank", f"{lowest * 1.001:.6f}")
    assert failing.code == 1 and "min-effective-rank" in failing.stderr and "of 1 of 4 layers below" in failing.stderr
