"""The Monitor and analyze share one recording step: same model, same data -> same numbers, same stored record.

Both are also checked against numpy float64 covariances of the same activations, taken by plain forward hooks.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import scipy.linalg
import torch
from torch import nn

import satcli


def _model() -> nn.Sequential:
    """features (three Linear layers) then a head: the model's output layer is `head`."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU())
    return nn.Sequential(OrderedDict(features=features, head=nn.Linear(8, 4))).eval()


def _batches(nan_at: int | None = None) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    # Correlated inputs, so k is well below the width and a wrong sample set shows in k.
    x = torch.randn(240, 3, generator=g) @ torch.randn(3, 6, generator=g) + 0.05 * torch.randn(240, 6, generator=g)
    if nan_at is not None:
        x[nan_at, 2] = float("nan")
    return list(x.split(40))


def _hooked_rows(model: nn.Module, batches: list[torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    """Each named layer's outputs over the inputs without NaN, as float64 numpy rows (independent of satcli)."""
    seen: dict[str, list[np.ndarray]] = {name: [] for name in names}
    modules = dict(model.named_modules())

    def keep(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
            seen[name].append(out.detach().double().numpy())

        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in names]
    with torch.no_grad():
        for x in batches:
            model(x)
    for handle in handles:
        handle.remove()
    finite = np.concatenate([np.isfinite(x.numpy()).all(axis=1) for x in batches])
    return {name: np.concatenate(rows)[finite] for name, rows in seen.items()}


def _k(rows: np.ndarray, delta: float = 0.99) -> int:
    eigs = np.clip(scipy.linalg.eigvalsh(np.cov(rows, rowvar=False))[::-1], 0, None)
    return int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), delta - 1e-12) + 1)


def _monitor(model: nn.Module, batches: list[torch.Tensor], **kwargs: object) -> satcli.Result:
    with satcli.Monitor(model, **kwargs) as monitor:  # type: ignore[arg-type]
        with torch.no_grad():
            for x in batches:
                model(x)
        result = monitor.checkpoint(step=0)
    assert result is not None
    return result


def _stored_options(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as file:
        return json.loads(file["checkpoints/0000"].attrs["options"])


def test_a_nan_input_is_left_out_the_same_way(tmp_path: Path) -> None:
    model, batches = _model(), _batches(nan_at=57)
    analyzed = satcli.analyze_model(model, batches, store=tmp_path / "analyze.h5").to_dict()
    watched = _monitor(model, batches, store=tmp_path / "monitor.h5").to_dict()
    names = ["features.0", "features.2", "features.4", "head"]
    rows = _hooked_rows(model, batches, names)
    assert [layer["name"] for layer in watched["layers"]] == names  # type: ignore[index]
    for mine, theirs in zip(watched["layers"], analyzed["layers"], strict=True):  # type: ignore[call-overload]
        assert mine["k"] == theirs["k"] == _k(rows[mine["name"]])
        assert mine["samples"] == theirs["samples"] == 239
        assert "non-finite" not in mine["flags"]
    assert watched["average_saturation"] == analyzed["average_saturation"]  # type: ignore[index]
    skipped = {"policy": "skip", "inputs_skipped": 1, "layer_samples_skipped": {}}
    assert watched["options"]["nonfinite"] == analyzed["options"]["nonfinite"] == skipped  # type: ignore[index]
    assert watched["options"]["num_inputs"] == analyzed["options"]["num_inputs"] == 239  # type: ignore[index]
    stored = _stored_options(tmp_path / "monitor.h5"), _stored_options(tmp_path / "analyze.h5")
    assert stored[0]["on_nonfinite"] == stored[1]["on_nonfinite"] == "skip"
    assert stored[0]["nonfinite"] == stored[1]["nonfinite"] == skipped


def test_a_selection_without_the_output_layer_averages_the_same(tmp_path: Path) -> None:
    model, batches = _model(), _batches()
    analyzed = satcli.analyze_model(model, batches, layers=["features.*"]).to_dict()
    watched = _monitor(model, batches, layers=["features.*"], store=tmp_path / "monitor.h5").to_dict()
    names = ["features.0", "features.2", "features.4"]
    rows = _hooked_rows(model, batches, names)
    expected = float(np.mean([_k(rows[name]) / rows[name].shape[1] for name in names]))
    for result in (watched, analyzed):
        assert [layer["name"] for layer in result["layers"]] == names  # type: ignore[index]
        assert result["output_layer"] == "head"
        assert result["averaged_layers"] == names
        assert abs(result["average_saturation"] - expected) < 1e-12  # type: ignore[index,operator]
    assert _stored_options(tmp_path / "monitor.h5")["output_layer"] == "head"


def test_the_output_layer_hooks_go_after_the_first_pass() -> None:
    model = _model()
    with satcli.Monitor(model, layers=["features.0"]):
        assert len(model.head._forward_hooks) == 1  # until the output layer is known
        with torch.no_grad():
            model(torch.randn(4, 6))
        assert len(model.head._forward_hooks) == 0
        assert len(model.features[0]._forward_hooks) == 1
