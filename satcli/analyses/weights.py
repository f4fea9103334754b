"""Weight spectra as an analysis (docs/method.md sec. 6): each tracked layer's empirical spectral density,
computed once from the model after the last batch (data-free) and stored, so `report` re-scores it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from satcli.analyses.base import Column, LayerAnalysis, entry_of, number_cell
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer

NO_MATRIX = "no single weight matrix (recurrent or not a Linear/Conv layer)"


class WeightsAnalysis(LayerAnalysis):
    """Keeps each tracked layer's ESD (eigenvalues of W^T W, float64) and its weight's shape."""

    name = "weights"
    keys = ("weights",)
    columns = (
        Column("alpha", "weights", lambda entry: number_cell(entry_of(entry, "weights").get("alpha"), ".2f"), True),
        Column(
            "st.rank", "weights", lambda entry: number_cell(entry_of(entry, "weights").get("stable_rank"), ".1f"), True
        ),
    )
    summary = "power-law alpha, stable rank and norms of each layer weight spectrum (data-free, docs/method.md sec. 6)"

    def __init__(self, options: object | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.names: dict[str, None] = {}
        self.layers: dict[str, dict[str, object]] = {}

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.names.setdefault(layer.name)

    def finish(self, module: torch.nn.Module) -> None:
        from satcli.weights.esd import eigenvalues
        from satcli.weights.matrices import layer_weights

        weights = layer_weights(module)
        for name in self.names:
            if name in self.layers:
                continue
            found = weights.get(name)
            if found is None:
                self.layers[name] = {"evals": np.zeros(0), "shape": np.zeros(0, dtype=np.int64)}
            else:
                shape = np.asarray(found.weight.shape, dtype=np.int64)
                self.layers[name] = {"evals": eigenvalues(found.weight), "shape": shape}

    def state(self) -> dict[str, object]:
        return dict(self.layers)

    def merge(self, other: Mapping[str, object]) -> None:
        # Data-free: every part of one run computed the same spectrum from the same weights; the first one is kept.
        for name, element in other.items():
            assert isinstance(element, Mapping)
            self.layers.setdefault(name, dict(element))
            self.names.setdefault(name)

    def reset(self) -> None:
        self.names.clear()
        self.layers.clear()

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        from satcli.weights.esd import spectrum_entry

        assert isinstance(element, Mapping)
        shape = tuple(int(d) for d in np.asarray(element["shape"]))
        return {"weights": spectrum_entry(shape, np.asarray(element["evals"])) if shape else {"reason": NO_MATRIX}}
