"""The analysis plug-in protocol: what the engine calls for every layer's samples, and how results come out.

Modelled on torchmetrics' Metric: ``update`` streams samples in (on their device, no host sync), ``state``
gives float64 numpy elements per layer (what a store or another process needs), ``merge`` folds another
run's state in exactly, ``reset`` forgets. Scoring a state is a pure function (``score``), so a stored
state gives the same numbers as a live run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch

from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


class Analysis(ABC):
    """One analysis over every tracked layer of a run."""

    name: ClassVar[str]

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @abstractmethod
    def update(
        self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> None:
        """Add one batch of a layer's samples, shape (B, ..., d): every leading index is one sample.

        `labels` holds one label per sample, in the order of ``samples.reshape(-1, d)`` (each sample carries
        its input's label; -1 = no label), or is None when the data carry none. `index` holds, in the same
        order, each sample's input's global index (its position in the whole data set, whatever the shard).
        """

    @abstractmethod
    def state(self) -> dict[str, object]:
        """Per-layer state elements (float64 numpy), keyed by layer name."""

    @abstractmethod
    def merge(self, other: Mapping[str, object]) -> None:
        """Fold in another run's `state()` of the same layers (two shards, two processes)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every sample seen."""


class LayerAnalysis(Analysis):
    """An analysis that adds its own entry (under `name`) to each layer's result."""

    @staticmethod
    @abstractmethod
    def score(stats: LayerStats, element: object) -> Mapping[str, object] | None:
        """The layer's result entry from its moments and this analysis' state element (pure)."""
