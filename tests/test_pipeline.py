"""End-to-end numbers: satcli's covariance, k and flags against numpy/scipy float64 references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, FLAG_UNDERSAMPLED
from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.errors import SatcliError
from satcli.models import LoadedModel, load_model
from satcli.store.observer import StoreObserver
from satcli.store.reader import read_activations, read_labels, read_store
from satcli.store.writer import StoreWriter
from satcli.taps import Reduction


def _k(cov: np.ndarray, delta: float = 0.99) -> int:
    """Reference k: scipy eigenvalues, descending, then the first prefix reaching delta."""
    eigs = np.clip(scipy.linalg.eigvalsh(cov)[::-1], 0, None)
    shares = np.cumsum(eigs) / eigs.sum()
    return int(np.searchsorted(shares, delta - 1e-12) + 1)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc2(torch.relu(self.fc1(h)))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, ConvNet, np.ndarray]:
    torch.manual_seed(0)
    net = ConvNet().eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2, 5, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    model = tmp_path / "net.pt2"
    ep = torch.export.export(net, (torch.from_numpy(x[:4]),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, model)
    return model, data, net, x


def _reference_layers(net: ConvNet, x: np.ndarray) -> dict[str, np.ndarray]:
    """Layer outputs recomputed in float64 from the weights, outside satcli."""
    w = {k: v.detach().double() for k, v in net.state_dict().items()}
    conv = torch.nn.functional.conv2d(torch.from_numpy(x).double(), w["conv.weight"], w["conv.bias"], padding=1)
    h = torch.relu(conv).mean((2, 3))
    fc1 = h @ w["fc1.weight"].T + w["fc1.bias"]
    fc2 = torch.relu(fc1) @ w["fc2.weight"].T + w["fc2.bias"]
    return {"conv": conv.numpy(), "fc1": fc1.numpy(), "fc2": fc2.numpy()}


def _run(model: Path, data: Path, store: Path | None, batch_size: int = 64, **options: object):
    loaded = load_model(model, device="cpu")
    source = open_data(str(data), DataOptions(batch_size=batch_size))
    opts = AnalysisOptions(**options)  # type: ignore[arg-type]
    if store is None:
        return analyze(loaded, source, opts)
    with StoreWriter(store) as writer:
        return analyze(loaded, source, opts, [StoreObserver.of(writer, opts)])


def test_covariance_and_k_match_numpy_on_the_same_activations(setup, tmp_path: Path) -> None:
    model, data, net, x = setup
    store = tmp_path / "out.h5"
    result = _run(model, data, store, store_activations=True, keep_moments=True)
    assert [layer.name for layer in result.layers] == ["conv", "fc1", "fc2"]
    _, [checkpoint] = read_store(store)
    reference = _reference_layers(net, x)
    for stored, score in zip(checkpoint.layers, result.layers, strict=True):
        acts = read_activations(store, checkpoint.key, stored.meta.name).astype(np.float64)
        assert acts.shape == (300, stored.meta.width)
        expected_cov = np.cov(acts, rowvar=False)
        assert _rel(stored.cov, expected_cov) <= 1e-10
        assert score.k == _k(expected_cov)
        assert score.saturation == pytest.approx(score.k / stored.meta.width)
        # The activations are the right layer's: float64 recomputation from the weights agrees to float32 rounding.
        ref = reference[stored.meta.name]
        ref = ref.mean(axis=(2, 3)) if ref.ndim == 4 else ref
        np.testing.assert_allclose(acts, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(read_labels(store, checkpoint.key), np.load(data)["y"])


def test_channelwise_against_float64_forward(setup) -> None:
    model, data, net, x = setup
    result = _run(model, data, None, reduction=Reduction("channelwise"))
    conv = _reference_layers(net, x)["conv"]
    rows = conv.transpose(0, 2, 3, 1).reshape(-1, conv.shape[1])
    assert result.layers[0].samples == 300 * 25
    assert result.layers[0].k == _k(np.cov(rows, rowvar=False))
    assert result.layers[0].reduction == "channelwise"


def test_batch_size_does_not_change_the_numbers(setup, tmp_path: Path) -> None:
    model, data, _, _ = setup
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    ra = _run(model, data, a, batch_size=7, keep_moments=True)
    rb = _run(model, data, b, batch_size=300, keep_moments=True)
    assert [s.k for s in ra.layers] == [s.k for s in rb.layers]
    for la, lb in zip(read_store(a)[1][0].layers, read_store(b)[1][0].layers, strict=True):
        assert _rel(la.cov, lb.cov) <= 1e-10


class Branches(nn.Module):
    """A wide layer (undersampled on 40 inputs), a dead one and one that overflows, side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Linear(4, 50)
        self.dead = nn.Linear(4, 3)
        self.bad = nn.Linear(4, 5)
        self.out = nn.Linear(50, 2)
        with torch.no_grad():
            self.dead.weight.zero_()
            self.bad.weight.fill_(float("inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, d, b = self.wide(x), self.dead(x), self.bad(x)
        return self.out(w) + 0 * (d.sum() + b.sum())


def test_dead_non_finite_and_undersampled_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    loaded = LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", Branches().eval(), torch.device("cpu"), None, None)
    result = analyze(loaded, open_data(str(data), DataOptions()), AnalysisOptions(store_activations=False))
    by_name = {s.name: s for s in result.layers}
    assert list(by_name) == ["wide", "dead", "bad", "out"]
    assert by_name["dead"].flags == (FLAG_DEAD,) and by_name["dead"].k == 0
    assert FLAG_UNDERSAMPLED in by_name["wide"].flags and by_name["wide"].k <= 39
    assert by_name["bad"].flags == (FLAG_NONFINITE,) and by_name["bad"].k is None
    assert result.verdict.averaged_layers == ("wide",)
    assert result.verdict.average == by_name["wide"].saturation


class FailsLate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x > 100).any()):
            raise RuntimeError("boom")
        return self.fc(x)


def test_failed_run_leaves_existing_store_intact(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save(FailsLate(), path)
    x = np.zeros((50, 3), dtype=np.float32)
    x[-1] = 1000
    data = tmp_path / "d.npz"
    np.savez(data, x=x)
    store = tmp_path / "existing.h5"
    store.write_bytes(b"earlier results")
    loaded = load_model(path, trust_pickle=True, device="cpu")
    source = open_data(str(data), DataOptions(batch_size=10))
    with pytest.raises(SatcliError, match="boom"), StoreWriter(store) as writer:
        analyze(loaded, source, AnalysisOptions(), [StoreObserver.of(writer, AnalysisOptions())])
    assert store.read_bytes() == b"earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "existing.h5", "m.pt"]


def test_in_place_relu_does_not_change_the_numbers(tmp_path: Path) -> None:
    """A model with ReLU(inplace=True) scores its layers' pre-activations, same as the out-of-place model."""
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(300, 3, 6, 6)).astype(np.float32), y=rng.integers(0, 3, 300))
    data = open_data(str(tmp_path / "d.npz"), DataOptions(batch_size=64))

    def net(inplace: bool) -> LoadedModel:
        torch.manual_seed(0)
        module = nn.Sequential(
            nn.Conv2d(3, 5, 3), nn.ReLU(inplace=inplace), nn.Flatten(), nn.Linear(80, 6), nn.ReLU(inplace=inplace)
        )
        return LoadedModel(Path("m"), "0" * 64, "module", module, torch.device("cpu"), None, None)

    for method in ("mean", "channelwise"):
        results = []
        for inplace in (False, True):
            path = tmp_path / f"{method}{inplace}.h5"
            with StoreWriter(path) as store:
                opts = AnalysisOptions(
                    reduction=Reduction(conv_method=method), store_activations=True, keep_moments=True
                )
                analyze(net(inplace), data, opts, [StoreObserver.of(store, opts)])
            layers = read_store(path)[1][0].layers
            results.append(([layer.stats.m2 for layer in layers], read_activations(path, "0000", "3")))
        for a, b in zip(results[0][0], results[1][0], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(results[0][1], results[1][1])
        assert (results[1][1] < 0).any()  # the stored Linear rows are pre-activation too
