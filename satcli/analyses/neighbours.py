"""Nearest-neighbour intrinsic dimension (docs/method.md, "Nearest-neighbour intrinsic dimension"): TwoNN and
the Levina-Bickel MLE on a per-layer reservoir of samples chosen by a hash of the input's global index.

The engine gives every sample its input's global index (its position in the whole data set, so shards and
ranks agree); a sample's key mixes that index with the sample's position among its input's samples. The state
element of a layer is its Reservoir; merging keeps the smallest keys of the union, so batch size, order,
ranks and shards give the same samples and the same estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from satcli.analyses.base import LayerAnalysis
from satcli.core import neighbours
from satcli.core.neighbours import DEFAULT_K, Reservoir, levina_bickel, sample_keys, twonn
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


class _ReservoirAnalysis(LayerAnalysis):
    """Keeps each layer's reservoir of at most `capacity` float64 samples (capacity x d memory per layer)."""

    wants_index = True  # the engine passes each sample's input index

    def __init__(self, device: torch.device | str | None = None, capacity: int | None = None) -> None:
        super().__init__(device)
        self.capacity = capacity or neighbours.DEFAULT_RESERVOIR
        self.layers: dict[str, Reservoir] = {}

    def update(
        self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> None:
        if index is None:
            raise ValueError(f"the {self.name} analysis needs each sample's input index")
        rows = samples.detach().reshape(-1, samples.shape[-1])
        index = index.reshape(-1)
        if rows.shape[0] != index.shape[0]:
            raise ValueError(f"{rows.shape[0]} samples but {index.shape[0]} input indices")
        keys = sample_keys(index.cpu().numpy(), _positions(index))
        reservoir = self.layers.get(layer.name) or Reservoir.empty(self.capacity, rows.shape[1])
        if len(reservoir.keys) >= self.capacity:  # copy to the host only the rows that can enter
            entering = np.flatnonzero(keys < reservoir.keys[-1])
            chosen = rows[torch.as_tensor(entering, device=rows.device)]
            new = Reservoir(
                reservoir.capacity, reservoir.keys, reservoir.rows, reservoir.seen + len(keys) - len(entering)
            )
            self.layers[layer.name] = new.add(keys[entering], chosen.to("cpu", torch.float64).numpy())
        else:
            self.layers[layer.name] = reservoir.add(keys, rows.to("cpu", torch.float64).numpy())

    def state(self) -> dict[str, object]:
        return dict(self.layers)

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, Reservoir)
            mine = self.layers.get(name)
            self.layers[name] = element if mine is None else mine.merge(element)

    def reset(self) -> None:
        self.layers.clear()


def _positions(index: torch.Tensor) -> np.ndarray | None:
    """Each sample's position among its input's samples (they are consecutive); None when one per input."""
    _, counts = torch.unique_consecutive(index, return_counts=True)
    if bool((counts == 1).all()):
        return None
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(index.shape[0], device=index.device) - torch.repeat_interleave(starts, counts)
    return position.cpu().numpy()


class TwoNNAnalysis(_ReservoirAnalysis):
    """TwoNN (Facco et al. 2017) on each layer's reservoir."""

    name = "twonn"

    @staticmethod
    def score(stats: LayerStats, element: object) -> Mapping[str, object] | None:
        assert isinstance(element, Reservoir)
        return twonn(element.rows).to_dict()


class MLEAnalysis(_ReservoirAnalysis):
    """Levina & Bickel's MLE with k = 20 neighbours on each layer's reservoir."""

    name = "mle"

    @staticmethod
    def score(stats: LayerStats, element: object) -> Mapping[str, object] | None:
        assert isinstance(element, Reservoir)
        return levina_bickel(element.rows, DEFAULT_K).to_dict()
