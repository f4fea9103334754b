"""Nearest-neighbour intrinsic dimension (docs/method.md, "Nearest-neighbour intrinsic dimension"): TwoNN and
the Levina-Bickel MLE on a per-layer reservoir of samples chosen by a hash of the input's global index.

The engine gives every sample its input's global index (its position in the whole data set, so shards and
ranks agree); a sample's key mixes that index with the sample's position among its input's samples. The state
element of a layer is its Reservoir; merging keeps the smallest keys of the union, so batch size, order,
ranks and shards give the same samples and the same estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from satcli.analyses.base import LayerAnalysis
from satcli.core import neighbours
from satcli.core.neighbours import Reservoir, levina_bickel, sample_keys, twonn
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


@dataclass(frozen=True)
class TwoNNOptions:
    """`reservoir`: at most this many samples per layer (reservoir x d float32 values per layer; float64 for a
    float64 model)."""

    reservoir: int = neighbours.DEFAULT_RESERVOIR

    def __post_init__(self) -> None:
        if self.reservoir < 3:
            raise ValueError(f"reservoir must be at least 3, got {self.reservoir}")


@dataclass(frozen=True)
class MLEOptions(TwoNNOptions):
    """`k`: neighbours per point of the Levina-Bickel estimate."""

    k: int = neighbours.DEFAULT_K

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 2:
            raise ValueError(f"k must be at least 2, got {self.k}")


class _ReservoirAnalysis(LayerAnalysis):
    """Keeps each layer's reservoir of at most `options.reservoir` samples, in the activations' precision."""

    Options = TwoNNOptions
    wants_index = True  # the engine passes each sample's input index

    def __init__(self, options: TwoNNOptions | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.capacity = int(self.options.reservoir)
        self.layers: dict[str, Reservoir] = {}

    @classmethod
    def column_bytes(cls, options: object) -> int:
        """The reservoir's rows, counted as float64 (a float32 model's take half)."""
        return 8 * int(options.reservoir)  # type: ignore[attr-defined]

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
        # float32 values (float16 / bfloat16 ones widened exactly) as they came; float64 only for a float64 model.
        dtype = torch.float64 if rows.dtype == torch.float64 else torch.float32
        reservoir = self.layers.get(layer.name)
        if reservoir is None:
            values = np.float64 if dtype == torch.float64 else np.float32
            reservoir = Reservoir.empty(self.capacity, rows.shape[1], values)
        if len(reservoir.keys) >= self.capacity:  # copy to the host only the rows that can enter
            entering = np.flatnonzero(keys < reservoir.keys[-1])
            chosen = rows[torch.as_tensor(entering, device=rows.device)]
            new = Reservoir(
                reservoir.capacity, reservoir.keys, reservoir.rows, reservoir.seen + len(keys) - len(entering)
            )
            self.layers[layer.name] = new.add(keys[entering], chosen.to("cpu", dtype).numpy())
        else:
            self.layers[layer.name] = reservoir.add(keys, rows.to("cpu", dtype).numpy())

    def state(self) -> dict[str, object]:
        return {name: _as_state(reservoir) for name, reservoir in self.layers.items()}

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            theirs = _reservoir(element)
            mine = self.layers.get(name)
            self.layers[name] = theirs if mine is None else mine.merge(theirs)

    def reset(self) -> None:
        self.layers.clear()


def _as_state(reservoir: Reservoir) -> dict[str, object]:
    """A reservoir as a plain state (stored generically as `<name>-state`)."""
    return {
        "keys": np.asarray(reservoir.keys, dtype=np.uint64),
        "rows": np.asarray(reservoir.rows, dtype=np.float64),
        "capacity": int(reservoir.capacity),
        "seen": int(reservoir.seen),
    }


def _reservoir(element: object) -> Reservoir:
    """The inverse of _as_state."""
    if isinstance(element, Reservoir):
        return element
    assert isinstance(element, Mapping)
    keys = np.asarray(element["keys"], dtype=np.uint64)
    rows = np.asarray(element["rows"], dtype=np.float64).reshape(len(keys), -1)
    return Reservoir(int(element["capacity"]), keys, rows, int(element["seen"]))  # type: ignore[call-overload]


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
    keys = ("twonn",)
    summary = "TwoNN nearest-neighbour intrinsic dimension on a reservoir of samples keyed by the input's index"

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        return {"twonn": twonn(_reservoir(element).rows).to_dict()}


class MLEAnalysis(_ReservoirAnalysis):
    """Levina & Bickel's MLE on each layer's reservoir (k neighbours, default 20)."""

    name = "mle"
    Options = MLEOptions
    keys = ("mle",)
    summary = "Levina-Bickel MLE intrinsic dimension (k neighbours) on a reservoir of samples"

    def state(self) -> dict[str, object]:
        return {name: {**state, "k": int(self.options.k)} for name, state in super().state().items()}  # type: ignore[dict-item]

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        k = int(element.get("k", neighbours.DEFAULT_K)) if isinstance(element, Mapping) else neighbours.DEFAULT_K
        return {"mle": levina_bickel(_reservoir(element).rows, k).to_dict()}
