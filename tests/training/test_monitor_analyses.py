"""The Monitor runs the engine's analyses (built as analyze builds them): health, spectrum and classes (labels
given by `monitor.labels(y)`) and the reservoir ones, with analyze's numbers on the same data, checked against
numpy on hook activations; their states go through state_dict and merge exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import satcli
from satcli.errors import SatcliError


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[0].bias[[2, 5]] = -50.0  # dead units of the first layer
    return model


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(240, 3, generator=g) @ torch.randn(3, 6, generator=g) + 0.1 * torch.randn(240, 6, generator=g)
    return x, torch.randint(0, 3, (240,), generator=g)


def _monitored(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, **kwargs: object) -> satcli.Monitor:
    monitor = satcli.Monitor(model, **kwargs)  # type: ignore[arg-type]
    with monitor, torch.no_grad():
        for i, part in enumerate(x.split(40)):
            if y is not None:
                monitor.labels(y[i * 40 : (i + 1) * 40])
            model(part)
    return monitor


def _layers(doc: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in doc["layers"]}


def test_health_spectrum_classes_equal_analyze_and_numpy() -> None:
    model, (x, y) = _model(), _data()
    monitor = _monitored(model, x, y, analyses=["health:tau=0.2", "classes"])
    watched = _layers(monitor.compute().to_dict())
    pairs = list(zip(x.split(40), y.split(40), strict=True))
    # The Monitor sums each layer's outputs (weights change while training): so does analyze here, without the
    # affine input route it takes for an expanding Linear (docs/method.md sec. 1).
    outputs = ["health:tau=0.2", "saturation:affine_inputs=false"]
    analyzed = _layers(satcli.analyze_model(model, pairs, analyses=outputs).to_dict())
    for name, layer in analyzed.items():
        for key in ("health", "classes", "effective_rank", "participation_ratio", "spectral_decay"):
            assert watched[name][key] == layer[key], (name, key)  # one recording step, same batches: same bits
    with torch.no_grad():
        acts = model[0](x).double().numpy()
    mean_abs = np.abs(acts).mean(axis=0)
    first = watched["0"]["health"]
    assert first["dead"] == pytest.approx(np.mean(acts.max(axis=0) <= 0)) and first["dead"] > 0
    assert first["dormant"] == pytest.approx(np.mean(mean_abs <= 0.2 * mean_abs.mean()))
    eigs = np.clip(np.linalg.eigvalsh(np.cov(acts, rowvar=False)), 0, None)
    p = eigs / eigs.sum()
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    assert watched["0"]["effective_rank"] == pytest.approx(np.exp(entropy), rel=1e-9)
    offsets = np.stack([acts[y.numpy() == c].mean(axis=0) - acts.mean(axis=0) for c in range(3)])
    weights = np.bincount(y.numpy()) / len(y)
    between = np.trace((offsets * weights[:, None]).T @ offsets) / np.trace(np.cov(acts, rowvar=False, bias=True))
    assert watched["0"]["classes"]["between_share"] == pytest.approx(between, rel=1e-9)


def test_states_merge_exactly_and_reservoirs_get_a_running_index() -> None:
    model, (x, y) = _model(), _data()
    specs = ["classes", "twonn:reservoir=100"]
    whole = _monitored(model, x, y, analyses=specs)
    first = _monitored(model, x[:120], y[:120], analyses=specs)
    second = _monitored(model, x[120:], y[120:], analyses=specs)
    joined = satcli.Monitor(model, analyses=specs)
    joined.merge(first.state_dict())
    saved = second.state_dict()
    torch.save(saved, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    joined.merge(torch.load(buffer, weights_only=True))
    one, two = _layers(whole.compute().to_dict()), _layers(joined.compute().to_dict())
    for name in one:
        numbers = {k: v for k, v in one[name]["classes"].items() if k != "notes"}
        assert {k: two[name]["classes"][k] for k in numbers} == pytest.approx(numbers, rel=1e-9)
    # The second part's index restarts at 0, so its reservoir keys are not those of one pass; the running
    # count within one monitor gives analyze's reservoir (same data, same order).
    analyzed = _layers(satcli.analyze_model(model, list(x.split(40)), analyses=["twonn:reservoir=100"]).to_dict())
    assert {n: v["twonn"] for n, v in one.items()} == {n: v["twonn"] for n, v in analyzed.items()}


def test_labels_of_another_size_and_eval_pass_analyses_are_refused() -> None:
    model, (x, y) = _model(), _data()
    monitor = satcli.Monitor(model, analyses=["classes"])
    with monitor, torch.no_grad(), pytest.raises(SatcliError, match="labels"):
        monitor.labels(y[:10])
        model(x[:40])
    with pytest.raises(SatcliError, match="evaluation pass"):
        satcli.Monitor(model, analyses=["probe"])
