"""`--data digits:raw`: the embedded digits scaled to [0, 1] only, for models trained on load_digits().data / 16."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from satcli.data import DataOptions, open_data
from satcli.engine.project import ProjectionOptions, project
from satcli.training.adapters import loaded_module

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _inputs(spec: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    source = open_data(spec, DataOptions(split=split))
    batches = list(source.iter_batches())
    x = torch.cat([b.inputs for b in batches]).numpy()  # type: ignore[misc]
    y = torch.cat([b.labels for b in batches]).numpy()  # type: ignore[misc]
    return x.reshape(len(x), -1), y


def test_raw_digits_are_sklearns_rows_over_16() -> None:
    digits = sklearn_datasets.load_digits()
    x, y = _inputs("digits:raw", "all")
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x, (digits.data / 16).astype(np.float32))  # x/16 is exact in float32
    np.testing.assert_array_equal(y, digits.target)
    standardized, _ = _inputs("digits", "all")
    np.testing.assert_allclose(standardized, (digits.data / 16 - 0.3050184552378965) / 0.3760207780345291, atol=1e-6)


def test_a_model_trained_on_x_over_16_scores_its_accuracy_on_raw_digits() -> None:
    x, y = _inputs("digits:raw", "train")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, labels = torch.from_numpy(x).reshape(-1, 1, 8, 8), torch.from_numpy(y)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    options = ProjectionOptions(deltas=(0.99,))
    accuracy = {
        spec: project(loaded_module(model), open_data(spec, DataOptions(split="test")), options=options).base_accuracy
        for spec in ("digits", "digits:raw")
    }
    assert accuracy["digits:raw"] > 0.9  # type: ignore[operator]
    assert accuracy["digits:raw"] > accuracy["digits"] + 0.1  # type: ignore[operator]
