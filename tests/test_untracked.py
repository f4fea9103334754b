"""MultiheadAttention tracked through its first output; every module satcli cannot tap named (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.models import LoadedModel, load_model
from satcli.taps.untracked import NOT_RUN_REASON


class Attention(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 12)
        self.att = nn.MultiheadAttention(12, 2, batch_first=batch_first)
        self.head = nn.Linear(12, 3)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) if self.batch_first else self.inp(x).transpose(0, 1)
        a, w = self.att(h, h, h)  # need_weights: the averaged weights are a second output
        a = a if self.batch_first else a.transpose(0, 1)
        return self.head(a.mean(1)) + 0 * w.sum()


def _k(rows: np.ndarray) -> int:
    eigs = np.clip(np.linalg.eigvalsh(np.cov(rows, rowvar=False))[::-1], 0, None)
    return int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)


@pytest.fixture(scope="module")
def seq_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(60, 12, 6)).astype(np.float32)  # T = 12 = embed dim
    path = tmp_path_factory.mktemp("seq") / "seq.npz"
    np.savez(path, x=x)
    return path, x


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("exported", [False, True])
def test_attention_is_measured_on_its_first_output(tmp_path: Path, seq_data, batch_first: bool, exported: bool) -> None:
    path, x = seq_data
    torch.manual_seed(0)
    net = Attention(batch_first).eval()
    if exported:
        example = torch.from_numpy(x[:4])
        ep = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(ep, tmp_path / "att.pt2")
        loaded = load_model(tmp_path / "att.pt2", device="cpu")
    else:
        loaded = LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", net, torch.device("cpu"), None, None)
    result = analyze(loaded, open_data(str(path), DataOptions(batch_size=16)), AnalysisOptions())
    by_name = {layer.name: layer for layer in result.layers}
    assert list(by_name) == ["inp", "att", "head"]  # att.out_proj is measured as att, never listed alone
    assert by_name["att"].type == "MultiheadAttention" and by_name["att"].width == 12
    # float64 reference: the attention module's own first output, token-averaged per input
    ref = net.double()
    h = ref.inp(torch.from_numpy(x).double())
    h = h if batch_first else h.transpose(0, 1)
    with torch.no_grad():
        out = ref.att(h, h, h)[0]
    out = out if batch_first else out.transpose(0, 1)
    assert by_name["att"].k == _k(out.mean(1).numpy())
    assert result.options["untracked"] == []


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.inp(x)).mean(1))


@pytest.fixture(scope="module")
def scripted_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ts") / "enc.ts"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(Encoder().eval()), path)
    return path


def test_torchscript_layers_in_control_flow_are_named(run_cli, scripted_encoder: Path, seq_data) -> None:
    data, _ = seq_data
    missing = ["enc.self_attn", "enc.linear1", "enc.linear2"]
    r = run_cli("analyze", scripted_encoder, "--data", data, "--no-store", "-f", "json")
    assert r.code == 0, r.stderr
    record = json.loads(r.stdout)
    assert [layer["name"] for layer in record["layers"]] == ["inp", "head"]
    assert [u["name"] for u in record["options"]["untracked"]] == missing
    assert "3 layers not tracked" in r.stderr and "--arch" in r.stderr
    listed = run_cli("layers", scripted_encoder)
    assert listed.code == 0 and "untracked (not measured): enc.self_attn (MultiheadAttention)" in listed.stdout
    assert all(f"{name} (" in listed.stdout for name in missing) and "--arch" in listed.stdout
    assert run_cli("check", scripted_encoder, "--data", data, "-q", "--max-tail", "0").code == 0  # inp is measured


class Functional(nn.Module):
    """proj's weights are used through F.linear, so the module itself never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.linear(torch.relu(self.fc(x)), self.proj.weight))


def test_a_module_that_never_runs_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32))
    loaded = LoadedModel(tmp_path / "m.pt", "0" * 64, "pickle", Functional().eval(), torch.device("cpu"), None, None)
    result = analyze(loaded, open_data(str(tmp_path / "d.npz"), DataOptions()), AnalysisOptions())
    assert [layer.name for layer in result.layers] == ["fc", "out"]
    [entry] = result.options["untracked"]
    assert (entry["name"], entry["type"], entry["reason"]) == ("proj", "Linear", NOT_RUN_REASON)
    excluded = analyze(loaded, open_data(str(tmp_path / "d.npz"), DataOptions()), AnalysisOptions(exclude=("proj",)))
    assert excluded.options["untracked"] == []  # left out on purpose is not untracked
