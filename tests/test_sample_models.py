"""Tests for the committed sample checkpoints in sample_models/ (made by sample_models/train.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sample_models import architectures
from satcli.data import DataOptions, open_data

MODELS_DIR = Path(__file__).resolve().parent.parent / "sample_models"
NAMES = ("narrow", "deep_wide", "sensible")
MAX_BYTES = 1_000_000


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The whole digits test split as (x, y) tensors."""
    dataset = open_data("digits", DataOptions(split="test")).dataset
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys, dtype=torch.int64)


@pytest.fixture(scope="module")
def metrics() -> dict[str, dict[str, float]]:
    """The metrics written by the training script."""
    return json.loads((MODELS_DIR / "metrics.json").read_text())


def load_exported(name: str) -> nn.Module:
    """The torch.export archive of one sample model, as a callable module."""
    return torch.export.load(MODELS_DIR / f"{name}.pt2").module()


def load_sensible_state_dict() -> nn.Module:
    """The sensible model built by its factory with the saved state dict loaded strictly."""
    model = architectures.sensible()
    state = torch.load(MODELS_DIR / "sensible_state_dict.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.mark.parametrize("filename", [*(f"{n}.pt2" for n in NAMES), "sensible_state_dict.pt", "metrics.json"])
def test_files_exist_and_are_small(filename: str) -> None:
    path = MODELS_DIR / filename
    assert path.is_file()
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_exported_models_load_with_dynamic_batch(name: str) -> None:
    model = load_exported(name)
    for batch in (1, 3, 17):
        with torch.no_grad():
            logits = model(torch.rand(batch, *architectures.INPUT_SHAPE))
        assert logits.shape == (batch, architectures.NUM_CLASSES)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_factories_match_exported_parameters(name: str) -> None:
    exported = torch.export.load(MODELS_DIR / f"{name}.pt2")
    expected = {k: tuple(v.shape) for k, v in architectures.FACTORIES[name]().state_dict().items()}
    assert {k: tuple(v.shape) for k, v in exported.state_dict.items()} == expected


def test_sensible_state_dict_matches_export(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = test_split
    with torch.no_grad():
        from_export = load_exported("sensible")(x)
        from_state = load_sensible_state_dict()(x)
    torch.testing.assert_close(from_state, from_export, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_metrics_reproduced(
    name: str, metrics: dict[str, dict[str, float]], test_split: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_split
    with torch.no_grad():
        accuracy = float((load_exported(name)(x).argmax(dim=1) == y).double().mean()) * 100.0
    assert abs(accuracy - metrics[name]["test_accuracy"]) <= 0.5
    model = architectures.FACTORIES[name]()
    assert metrics[name]["parameters"] == sum(p.numel() for p in model.parameters())


def test_sensible_state_dict_accuracy(
    metrics: dict[str, dict[str, float]], test_split: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_split
    with torch.no_grad():
        accuracy = float((load_sensible_state_dict()(x).argmax(dim=1) == y).double().mean()) * 100.0
    assert abs(accuracy - metrics["sensible"]["test_accuracy"]) <= 0.5


def test_expected_accuracy_ordering(metrics: dict[str, dict[str, float]]) -> None:
    assert metrics["sensible"]["test_accuracy"] > 90.0
    assert metrics["deep_wide"]["test_accuracy"] > 90.0
    assert metrics["narrow"]["test_accuracy"] < metrics["sensible"]["test_accuracy"]
