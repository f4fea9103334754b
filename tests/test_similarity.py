"""`satcli similarity` against numpy CKA on activations captured with plain forward hooks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cka_reference import reference_cka
from torch import nn

from satcli.cli.similarity import parse_size

LAYERS = ("conv1", "conv2", "fc1", "fc2")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc1 = nn.Linear(8, 12)
        self.fc2 = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1)
        return self.fc2(torch.tanh(self.fc1(h)))


def _export(net: nn.Module, x: np.ndarray, path: Path) -> Path:
    ep = torch.export.export(net, (torch.from_numpy(x[:4]),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, path)
    return path


def hooked(net: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's output pooled per input (mean over positions), with forward hooks, in float64."""
    out: dict[str, np.ndarray] = {}
    handles = [
        getattr(net, name).register_forward_hook(
            lambda m, i, o, name=name: out.__setitem__(
                name, o.detach().double().mean(dim=(2, 3)).numpy() if o.ndim == 4 else o.detach().double().numpy()
            )
        )
        for name in LAYERS
    ]
    with torch.no_grad():
        net(torch.from_numpy(x))
    for h in handles:
        h.remove()
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("similarity")
    torch.manual_seed(0)
    net = Net().eval()
    x = np.random.default_rng(0).normal(size=(300, 2, 5, 5)).astype(np.float32) + 1.5
    data = tmp / "data.npz"
    np.savez(data, x=x, y=np.zeros(300, dtype=np.int64))
    rotated = copy.deepcopy(net)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    q = torch.from_numpy(q).float()
    with torch.no_grad():  # fc1's output turned by an orthogonal Q (fc2 is left as it is)
        rotated.fc1.weight.copy_(q @ net.fc1.weight)
        rotated.fc1.bias.copy_(q @ net.fc1.bias)
    return _export(net, x, tmp / "a.pt2"), _export(rotated, x, tmp / "b.pt2"), data, hooked(net, x), hooked(rotated, x)


def _json(run_cli, *args: object) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli("similarity", *args, "-q", "-f", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_one_model_matrix_matches_numpy(run_cli, setup) -> None:  # type: ignore[no-untyped-def]
    model, _, data, acts, _ = setup
    record = _json(run_cli, model, "--data", data, "--batch-size", "64", "--debiased")
    assert record["layers_a"] == list(LAYERS) == record["layers_b"]
    assert len(record["pairs"]) == 10  # every pair with a <= b, the diagonal included
    for i, a in enumerate(LAYERS):
        for j, b in enumerate(LAYERS):
            want = reference_cka(acts[a], acts[b])
            assert record["matrix"][i][j] == pytest.approx(want, abs=1e-6)  # float32 activations
            assert record["debiased_matrix"][i][j] == pytest.approx(reference_cka(acts[a], acts[b], True), abs=1e-6)
    assert all(p["n"] == 300 for p in record["pairs"])


def test_two_models_rotated_layer_has_cka_one(run_cli, setup) -> None:  # type: ignore[no-untyped-def]
    model, rotated, data, acts, acts_rotated = setup
    record = _json(run_cli, model, rotated, "--data", data, "--debiased")
    pairs = {(p["a"], p["b"]): p for p in record["pairs"]}
    assert len(pairs) == 16
    assert pairs[("fc1", "fc1")]["cka"] == pytest.approx(1.0, abs=1e-6)
    assert pairs[("fc1", "fc1")]["debiased_cka"] == pytest.approx(1.0, abs=1e-6)
    assert pairs[("conv2", "conv2")]["cka"] == pytest.approx(1.0, abs=1e-6)
    for (a, b), pair in pairs.items():
        assert pair["cka"] == pytest.approx(reference_cka(acts[a], acts_rotated[b]), abs=1e-6)


def test_a_small_budget_takes_more_passes_and_gives_the_same_numbers(run_cli, setup) -> None:  # type: ignore[no-untyped-def]
    model, rotated, data, _, _ = setup
    whole = _json(run_cli, model, rotated, "--data", data)
    split = _json(run_cli, model, rotated, "--data", data, "--memory-budget", "8KiB")
    assert whole["passes"] == 1 and split["passes"] > 1 and split["held_bytes"] <= 8 * 1024
    np.testing.assert_allclose(split["matrix"], whole["matrix"], rtol=1e-12)
    too_small = run_cli("similarity", model, rotated, "--data", data, "-q", "--memory-budget", "1KB")
    assert too_small.code == 2 and "memory budget" in too_small.stderr and "Traceback" not in too_small.stderr


def test_table_csv_and_plot(run_cli, setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, rotated, data, _, _ = setup
    png = tmp_path / "cka.png"
    table = run_cli("similarity", model, rotated, "--data", data, "-q", "--plot", png)
    assert table.code == 0 and png.stat().st_size > 0
    assert "a2  fc1" in table.stdout and "b0  conv1" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    csv = run_cli("similarity", model, "--data", data, "-q", "-f", "csv")
    assert csv.stdout.splitlines()[0] == "a,b,cka,debiased_cka,n" and len(csv.stdout.splitlines()) == 11


def test_parse_size() -> None:
    assert parse_size("600MB") == 600 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("512k") == 512_000
    assert parse_size("1.5KiB") == 1536
    assert parse_size("1000") == 1000
    for bad in ("2x", "-1MB", "0", "MB", "iB"):
        with pytest.raises(Exception, match=r"size|positive"):
            parse_size(bad)


def test_three_shards_merge_to_the_one_process_sums(run_cli, setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, rotated, data, acts, acts_rotated = setup
    whole = _json(run_cli, model, rotated, "--data", data, "--debiased", "--batch-size", "64")
    parts = [tmp_path / f"part{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        out = run_cli("similarity", model, rotated, "--data", data, "-q", "--shard", f"{i}/3", "-o", part)
        assert out.code == 0 and out.stdout == "", out.stderr
    with h5py.File(parts[1], "r") as f:  # the store's encoding conventions, and the shard it holds
        assert (f.attrs["encoding_type"], f.attrs["encoding_version"]) == ("similarity-sums", 1)
        assert f["crosses/2-2"].attrs["encoding_type"] == "cka-cross" and f.attrs["shard_start"] == 100
    merged = _json(run_cli, "--merge", parts[2], parts[0], parts[1], "--debiased")  # any order: data order
    assert merged["inputs"] == 300 and merged["layers_b"] == list(LAYERS)
    for key in ("matrix", "debiased_matrix"):
        np.testing.assert_allclose(merged[key], whole[key], rtol=1e-12, atol=1e-14)
    for i, a in enumerate(LAYERS):
        for j, b in enumerate(LAYERS):
            assert merged["matrix"][i][j] == pytest.approx(reference_cka(acts[a], acts_rotated[b]), abs=1e-6)
    full = tmp_path / "full.h5"
    table = run_cli("merge", *parts, "-o", full)  # satcli merge: the complete sums, and the table
    assert table.code == 0 and "a2  fc1" in table.stdout, table.stderr
    again = _json(run_cli, "--merge", full)
    np.testing.assert_allclose(again["matrix"], whole["matrix"], rtol=1e-12, atol=1e-14)


def test_parts_of_other_runs_are_refused(run_cli, setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, rotated, data, _, _ = setup
    parts = {}
    runs = {
        "a0": (model, "--shard", "0/2"),
        "a1": (model, "--shard", "1/2"),
        "r1": (rotated, "--shard", "1/2"),
        "x1": (model, "--shard", "1/2", "--layers", "fc1"),
    }
    for name, args in runs.items():
        parts[name] = tmp_path / f"{name}.h5"
        assert run_cli("similarity", *args, "--data", data, "-q", "-o", parts[name]).code == 0
    for pair, words in ((("a0", "r1"), "another sha256"), (("a0", "x1"), "another layers a"), (("a1",), "gap")):
        out = run_cli("similarity", "--merge", *(parts[p] for p in pair))
        assert out.code == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = run_cli("similarity", model, "--data", data, "--shard", "0/2")
    assert out.code == 2 and "--output" in out.stderr
