"""ClassesAnalysis against numpy float64 per-class sums of the same samples (channelwise and dense)."""

from __future__ import annotations

import numpy as np
import torch

from satcli.analyses.classes import ClassesAnalysis
from satcli.core.state import ClassStats
from satcli.taps.layers import Layer


def _reference(rows: np.ndarray, labels: np.ndarray) -> dict[int, tuple[int, np.ndarray]]:
    return {int(c): (int((labels == c).sum()), rows[labels == c].mean(axis=0)) for c in np.unique(labels[labels >= 0])}


def _check(element: object, rows: np.ndarray, labels: np.ndarray) -> None:
    assert isinstance(element, ClassStats)
    reference = _reference(rows, labels)
    assert element.labels.tolist() == sorted(reference)
    for i, label in enumerate(element.labels.tolist()):
        count, mean = reference[label]
        assert int(element.counts[i]) == count
        got = element.shift + element.sums[i] / element.counts[i]
        assert np.max(np.abs(got - mean)) <= 1e-12 * max(1.0, np.max(np.abs(mean)))
    assert element.unlabeled == int((labels < 0).sum())


def test_channelwise_samples_give_numpy_class_means() -> None:
    gen = torch.Generator().manual_seed(3)
    layer = Layer(name="conv", type="Conv2d", kind="conv", width=5, order=0)
    analysis = ClassesAnalysis(device="cpu")
    all_rows, all_labels = [], []
    for _ in range(3):
        out = torch.randn(7, 5, 4, 3, generator=gen) * 3 + 100.0  # a large mean, as after a bias
        labels = torch.randint(-1, 4, (7,), generator=gen)
        samples = out.movedim(1, -1)  # what sample_view gives for channelwise: (B, H, W, C), a view
        per_sample = labels.reshape(-1, 1).expand(-1, 12).reshape(-1)
        analysis.update(layer, samples, per_sample)
        all_rows.append(samples.reshape(-1, 5).double().numpy())
        all_labels.append(per_sample.numpy())
    _check(analysis.state()["conv"], np.concatenate(all_rows), np.concatenate(all_labels))


def test_dense_samples_and_mixed_labels_within_an_input_give_numpy_class_means() -> None:
    gen = torch.Generator().manual_seed(4)
    layer = Layer(name="fc", type="Linear", kind="dense", width=6, order=0)
    analysis = ClassesAnalysis(device="cpu")
    rows = torch.randn(40, 6, generator=gen)
    labels = torch.randint(0, 3, (40,), generator=gen)
    analysis.update(layer, rows[:25], labels[:25])
    # (B, T, d) samples whose positions carry different labels take the per-sample route
    tokens = rows[25:].reshape(5, 3, 6)
    analysis.update(layer, tokens, labels[25:])
    _check(analysis.state()["fc"], rows.double().numpy(), labels.numpy())
