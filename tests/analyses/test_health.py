"""Activation health (docs/method.md, "Activation health") against numpy on hook activations: forced dead
units, dormant units, an exact merge of two halves, the store round trip and the check gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import satcli
from satcli.analyses.health import HealthAnalysis, HealthOptions
from satcli.store.reader import read_store
from satcli.taps.layers import Layer

DEAD_ROWS = [1, 4, 5]


def _model() -> nn.Sequential:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 10), nn.ReLU(), nn.Linear(10, 4))
    with torch.no_grad():
        model[0].bias[DEAD_ROWS] = -100.0  # those units never exceed 0 on these inputs
        model[0].weight[7] *= 1e-4  # and this one is dormant: tiny |x| next to the others
        model[0].bias[7] = 0.0
    return model


def _numpy_health(acts: np.ndarray, tau: float = 0.1) -> dict[str, float]:
    mean_abs = np.abs(acts).mean(axis=0)
    return {
        "dead": float(np.mean(acts.max(axis=0) <= 0)),
        "dormant": float(np.mean(mean_abs <= tau * mean_abs.mean())),
    }


def test_against_numpy_on_hook_activations() -> None:
    model = _model()
    inputs = torch.randn(200, 8)
    seen: list[np.ndarray] = []
    hook = model[0].register_forward_hook(lambda m, i, o: seen.append(o.detach().double().numpy()))
    result = satcli.analyze_model(model, list(inputs.split(32))).to_dict()
    hook.remove()
    acts = np.concatenate(seen)
    first = result["layers"][0]
    want = _numpy_health(acts)
    assert want["dead"] == pytest.approx(len(DEAD_ROWS) / 10) and first["health"]["dead"] == want["dead"]
    assert first["health"]["dormant"] == want["dormant"] and want["dormant"] >= 0.4  # dead rows are dormant too
    custom = satcli.analyze_model(model, list(inputs.split(32)), analyses=["health:tau=0.5"]).to_dict()
    assert custom["layers"][0]["health"] == _numpy_health(acts, 0.5)
    assert custom["options"]["analysis_options"] == {"health": {"tau": 0.5}}


@pytest.mark.parametrize("conv_method", ["mean", "channelwise"])
def test_conv_units_are_judged_at_every_position_whatever_the_pooling(conv_method: str) -> None:
    """A channel with a negative spatial mean that is > 0 at some position is alive (a following ReLU fires)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 3))
    with torch.no_grad():
        model[0].bias[:] = torch.tensor([-100.0, -0.6, 0.0, 0.0, -100.0, 0.0])  # 0 and 4 never fire
    inputs = torch.randn(64, 1, 8, 8)
    seen: list[np.ndarray] = []
    hook = model[0].register_forward_hook(lambda m, i, o: seen.append(o.detach().double().numpy()))
    result = satcli.analyze_model(model, list(inputs.split(16)), conv_method=conv_method).to_dict()
    hook.remove()
    acts = np.concatenate(seen)  # (N, C, H, W)
    positions = acts.transpose(0, 2, 3, 1).reshape(-1, 6)
    pooled_max = acts.mean(axis=(2, 3)).max(axis=0)
    assert pooled_max[1] <= 0 < positions[:, 1].max()  # the case pooling would call dead
    assert result["layers"][0]["health"] == _numpy_health(positions) and _numpy_health(positions)["dead"] == 2 / 6


def test_merge_of_two_halves_equals_one_pass() -> None:
    layer = Layer(name="x", type="Linear", kind="linear", width=6)
    rows = torch.randn(100, 6, dtype=torch.float32)
    rows[:, 2] = -rows[:, 2].abs()
    whole, first, second = (HealthAnalysis(HealthOptions(), "cpu") for _ in range(3))
    whole.update(layer, rows, None)
    first.update(layer, rows[:37], None)
    second.update(layer, rows[37:], None)
    first.merge(second.state())
    a, b = whole.state()["x"], first.state()["x"]
    assert np.array_equal(a["maximum"], b["maximum"])  # type: ignore[index]
    assert a["samples"] == b["samples"] == 100  # type: ignore[index]
    np.testing.assert_allclose(b["abs_sum"], np.abs(rows.double().numpy()).sum(axis=0), rtol=1e-12)  # type: ignore[index]
    assert np.array_equal(a["maximum"], rows.double().numpy().max(axis=0))  # type: ignore[index]


def test_store_round_trip_report_and_gate(run_cli, tmp_path) -> None:
    model = _model()
    store = tmp_path / "h.h5"
    live = satcli.analyze_model(model, list(torch.randn(120, 8).split(40)), store=store).to_dict()
    _, (checkpoint,) = read_store(store)
    assert set(checkpoint.layers[0].extras["health"]) == {"maximum", "abs_sum", "samples", "tau"}  # type: ignore[arg-type]
    report = run_cli("report", store, "-f", "json")
    assert report.code == 0, report.stderr
    stored = json.loads(report.stdout)
    assert [layer["health"] for layer in stored["layers"]] == [layer["health"] for layer in live["layers"]]
    table = run_cli("report", store)
    assert "30% dead units" in table.stdout
    failing = run_cli("check", store, "--fail-on", "none", "--max-dead", "0.2")
    assert failing.code == 1 and "max-dead" in failing.stderr and "0 30.0%" in failing.stderr
    assert run_cli("check", store, "--fail-on", "none", "--max-dead", "0.3").code == 0
