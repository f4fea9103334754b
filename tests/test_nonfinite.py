"""Non-finite inputs and layer outputs: left out per input / per sample, counted, or refused (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def _loaded(tmp_path: Path, net: nn.Module) -> LoadedModel:
    return LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", net.eval(), torch.device("cpu"), None, None)


def _reference(net: Mlp, x: np.ndarray) -> dict[str, np.ndarray]:
    """float64 layer outputs from the weights, outside satcli."""
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    fc1 = x.astype(np.float64) @ w["fc1.weight"].T + w["fc1.bias"]
    fc2 = np.tanh(fc1) @ w["fc2.weight"].T + w["fc2.bias"]
    return {"fc1": fc1, "fc2": fc2}


@pytest.fixture
def nan_data(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    x[10, 2] = np.nan
    x[50, 0] = np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, x=x)
    return path, x


def test_nonfinite_inputs_are_left_out_and_the_rest_measured(tmp_path: Path, nan_data) -> None:
    path, x = nan_data
    torch.manual_seed(0)
    net = Mlp()
    result = analyze(_loaded(tmp_path, net), open_data(str(path), DataOptions(batch_size=16)), AnalysisOptions())
    finite = np.delete(x, [10, 50], axis=0)
    reference = _reference(net, finite)
    for layer in result.layers:
        assert layer.samples == 62 and layer.flags == ()
        eigs = np.clip(np.linalg.eigvalsh(np.cov(reference[layer.name], rowvar=False))[::-1], 0, None)
        k = int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)
        assert layer.k == k
    assert result.options["num_inputs"] == 62
    assert result.options["nonfinite"] == {"policy": "skip", "inputs_skipped": 2, "layer_samples_skipped": {}}
    assert result.verdict.average is not None


def test_fail_policy_names_the_first_bad_input(tmp_path: Path, nan_data) -> None:
    path, _ = nan_data
    source = open_data(str(path), DataOptions(batch_size=16))
    with pytest.raises(DataError, match=r"input 10 holds non-finite"):
        analyze(_loaded(tmp_path, Mlp()), source, AnalysisOptions(on_nonfinite="fail"))


def test_all_inputs_nonfinite_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "all.npz"
    np.savez(path, x=np.full((8, 4), np.nan, dtype=np.float32))
    with pytest.raises(SatcliError, match="every one of the 8 inputs"):
        analyze(_loaded(tmp_path, Mlp()), open_data(str(path), DataOptions()), AnalysisOptions())


def test_layer_overflow_drops_only_that_input_in_each_layer(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    x[5, 0] = 3e38  # finite input; fc1's first weight column of 2 overflows float32 to inf
    path = tmp_path / "big.npz"
    np.savez(path, x=x)
    torch.manual_seed(0)
    net = Mlp()
    with torch.no_grad():
        net.fc1.weight[:, 0] = 2.0
    result = analyze(_loaded(tmp_path, net), open_data(str(path), DataOptions(batch_size=8)), AnalysisOptions())
    by_name = {layer.name: layer for layer in result.layers}
    assert by_name["fc1"].samples == 39
    assert result.options["nonfinite"]["inputs_skipped"] == 0
    assert result.options["nonfinite"]["layer_samples_skipped"]["fc1"] == 1
    reference = _reference(net, np.delete(x, 5, axis=0))["fc1"]
    eigs = np.clip(np.linalg.eigvalsh(np.cov(reference, rowvar=False))[::-1], 0, None)
    assert by_name["fc1"].k == int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)


def test_cli_counts_skipped_inputs_on_stderr_and_in_json(run_cli, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    images = np.load(repo / "satcli/datasets/digits.npz")["images"][:64].astype(np.float32)[:, None] / 16
    images[3, 0, 2, 2] = np.nan
    data = tmp_path / "img.npz"
    np.savez(data, x=images)
    model = repo / "sample_models/sensible.pt2"
    r = run_cli("analyze", model, "--data", data, "--no-store", "-f", "json")
    assert r.code == 0, r.stderr
    assert "1 of 64 inputs held NaN or inf and were left out of every statistic" in r.stderr
    record = json.loads(r.stdout)
    assert record["options"]["nonfinite"]["inputs_skipped"] == 1
    assert all(layer["samples"] == 63 for layer in record["layers"])
    r = run_cli("analyze", model, "--data", data, "--no-store", "--on-nonfinite", "fail")
    assert r.code == 2 and "input 3 holds non-finite values" in r.stderr and "Traceback" not in r.stderr


def test_all_nonfinite_data_is_the_datas_error_not_the_models(run_cli, tmp_path: Path) -> None:
    np.save(tmp_path / "allnan.npy", np.full((10, 1, 8, 8), np.nan, dtype=np.float32))
    model = Path(__file__).resolve().parent.parent / "sample_models/sensible.pt2"
    r = run_cli("analyze", model, "--data", tmp_path / "allnan.npy", "--no-store")
    assert r.code == 2 and r.stderr.startswith(f"error: every one of the 10 inputs of {tmp_path / 'allnan.npy'}")
