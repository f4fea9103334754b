"""`analyze --precision float32`: each layer's proven rounding bound and k certificate (docs/method.md sec. 1)
against numpy float64 on the float32 activations of the same inputs, kept by the store and by `report`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from conftest import SAMPLE_MODELS
from torch import nn

from satcli.store.reader import read_store


def _k(cov: np.ndarray, delta: float = 0.99) -> int:
    eigs = np.clip(scipy.linalg.eigvalsh(cov)[::-1], 0, None)
    return int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), delta - 1e-12) + 1)


def _setup(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """A 256-wide layer over 3,000 rows (a non-trivial bound) and its float32 outputs, hooked outside satcli."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3000, 64)) * np.geomspace(1, 0.01, 64) + 2).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=rng.integers(0, 10, size=3000))
    model = tmp_path / "net.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (torch.from_numpy(x[:4]),), dynamic_shapes=({0: batch},)), model)
    outputs: dict[str, list[np.ndarray]] = {"0": [], "2": []}
    for name in outputs:
        net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: outputs[name].append(o.numpy()))
    with torch.no_grad():
        for start in range(0, 3000, 64):
            net(torch.from_numpy(x[start : start + 64]))
    return model, tmp_path / "data.npz", {name: np.concatenate(rows) for name, rows in outputs.items()}


def test_float32_run_bounds_its_error_certifies_k_and_report_repeats_it(run_cli, tmp_path: Path) -> None:
    model, data, acts = _setup(tmp_path)
    store = tmp_path / "run.h5"
    flags = ("--precision", "float32", "--store", store, "--keep-moments", "-f", "json")
    run = run_cli("analyze", model, "--data", data, *flags)
    assert run.code == 0, run.stderr
    ran = run_cli("report", store, "-f", "json")
    assert ran.code == 0, ran.stderr
    layers = {layer["name"].rsplit(".", 1)[-1]: layer for layer in json.loads(ran.stdout)["layers"]}
    _, checkpoints = read_store(store)
    stored = {layer.meta.name.rsplit(".", 1)[-1]: layer.stats for layer in checkpoints[0].layers}
    for name, rows in acts.items():
        reference = np.cov(rows.astype(np.float64), rowvar=False)
        stats, entry = stored[name], layers[name]["float32"]
        cov = stats.m2 / (stats.samples - 1)
        assert 0 < np.linalg.norm(cov - reference) <= entry["eps"] == stats.rounding
        truth = _k(reference)
        assert entry["k_low"] <= truth <= entry["k_high"]
        if entry["certified"]:
            assert layers[name]["k"] == truth and "float32" not in layers[name]["flags"]
        else:
            assert "float32" in layers[name]["flags"]
    assert layers["0"]["width"] == 256 and layers["0"]["float32"]["eps"] > 1e-6  # a non-trivial bound
    assert json.loads(run.stdout)["layers"] == json.loads(ran.stdout)["layers"]  # report re-scores the same


def test_a_sample_model_in_float32_has_entries_the_same_k_and_is_recorded(run_cli) -> None:
    """--precision on a sample model: float32 layers carry their certificate, float64 ones none; k is the same
    and the run records its precision (a default run records nothing new); a bad precision is one line, exit 2."""
    model = SAMPLE_MODELS / "sensible.pt2"
    runs = {}
    for precision in ("float32", "float64"):
        result = run_cli("analyze", model, "--no-store", "-q", "-f", "json", "--precision", precision)
        assert result.code == 0, result.stderr
        runs[precision] = json.loads(result.stdout)
    for f32, f64 in zip(runs["float32"]["layers"], runs["float64"]["layers"], strict=True):
        entry = f32["float32"]
        assert entry["eps"] > 0 and entry["k_low"] <= f32["k"] <= entry["k_high"]
        assert entry["certified"] == (entry["k_low"] == entry["k_high"]) != ("float32" in f32["flags"])
        assert "float32" not in f64 and "float32" not in f64["flags"]
        assert f32["k"] == f64["k"]
    assert runs["float32"]["options"]["precision"] == "float32"
    assert "precision" not in runs["float64"]["options"]  # default runs record what they always did
    bad = run_cli("analyze", model, "--no-store", "-q", "--precision", "float16")
    assert bad.code == 2 and "float16" in bad.stderr


def test_a_table_notes_an_uncertified_k(run_cli) -> None:
    result = run_cli("analyze", SAMPLE_MODELS / "sensible.pt2", "--no-store", "--precision", "float32")
    assert result.code == 0
    noted = [line for line in result.stderr.splitlines() if "float32 rounding" in line]
    flagged = [line for line in result.stdout.splitlines() if line.rstrip().endswith("float32")]
    assert len(noted) == len(flagged) >= 1 and "rerun with --precision float64" in noted[0]
