"""Saturation (METHOD.md sec. 1): exact streaming mean and covariance per layer, scored into k and s = k / d."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from satcli.analyses.base import Analysis
from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.moments import Moments
from satcli.core.spectral import eigenvalues
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


class SaturationAnalysis(Analysis):
    """Keeps a float64 covariance accumulator per layer; its state elements are LayerStats."""

    name = "saturation"

    def __init__(self, device: torch.device | str | None = None, precision: str = "float64") -> None:
        super().__init__(device)
        self.precision = precision
        self.accumulators: dict[str, CovarianceAccumulator] = {}

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        acc = self.accumulators.get(layer.name)
        if acc is None:
            acc = self.accumulators[layer.name] = CovarianceAccumulator(
                int(layer.width or samples.shape[-1]), self.device, self.precision
            )
        acc.update(samples)

    def state(self) -> dict[str, object]:
        return {name: layer_stats(acc) for name, acc in self.accumulators.items()}

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, LayerStats)
            acc = self.accumulators.get(name)
            if acc is None:
                acc = self.accumulators[name] = CovarianceAccumulator(
                    int(element.mean.shape[0]), self.device, self.precision
                )
            acc.merge_moments(_moments(element, self.device), nonfinite=element.nonfinite)

    def reset(self) -> None:
        self.accumulators.clear()


def layer_stats(acc: CovarianceAccumulator) -> LayerStats:
    """A layer's moments as float64 numpy, with the covariance's eigenvalues."""
    n, mean, cov = acc.compute()
    return LayerStats(
        samples=n,
        mean=mean.cpu().numpy(),
        m2=acc.moments.m2.cpu().numpy(),
        eigenvalues=eigenvalues(cov.cpu().numpy()),
        nonfinite=acc.nonfinite,
    )


def _moments(stats: LayerStats, device: torch.device) -> Moments:
    return Moments(
        int(stats.samples),
        torch.as_tensor(np.asarray(stats.mean), dtype=torch.float64, device=device),
        torch.as_tensor(np.asarray(stats.m2), dtype=torch.float64, device=device),
    )
