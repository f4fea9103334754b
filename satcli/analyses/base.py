"""The analysis plug-in protocol (second version): what the engine calls for every layer's samples, what a
store keeps of it, and how its results come out (docs/design: "The analysis protocol").

Modelled on torchmetrics' Metric: ``update`` streams samples in (on their device, no host sync), ``state``
gives each layer's element (what a store or another process needs: a plain dict of float64/int64 arrays,
ints and floats), ``merge`` folds another run's state in exactly, ``reset`` forgets. Scoring a state is a
pure function (``score``), so a stored state gives the same numbers as a live run. An analysis is one class:
it declares its name, its options (a frozen dataclass with defaults), the analyses whose state it reads
(``requires``), its state version, the JSON keys it adds to each layer and optional table columns; the
registry (analyses/registry.py) builds it from ``NAME:opt=value`` text.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from satcli.core.state import CheckpointState, LayerStats
from satcli.taps.layers import Layer

# When an analysis runs without being asked: always, only when the data carry labels, or only when asked.
ON, LABELLED, OFF = "on", "labelled", "off"


@dataclass(frozen=True)
class NoOptions:
    """The options of an analysis that has none."""


@dataclass(frozen=True)
class Column:
    """One table column an analysis offers: its header and its cell from the layer's JSON entry.

    `default` columns are shown whenever a layer's entry has `key`; the others only when asked for by header.
    """

    header: str
    key: str
    cell: Callable[[Mapping[str, object]], str]
    default: bool = False


def number_cell(value: object, spec: str = ".2f", scale: float = 1.0, suffix: str = "") -> str:
    """A table cell for a JSON number: formatted with `spec` after scaling, or 'n/a' when missing or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value * scale:{spec}}{suffix}"


def percent_cell(value: object) -> str:
    """A fraction as a table percentage with one decimal ('52.3%'), or 'n/a'."""
    return number_cell(value, ".1f", 100.0, "%")


def entry_of(entry: Mapping[str, object], key: str) -> Mapping[str, object]:
    """The mapping under `key` of a layer's JSON entry (empty when absent)."""
    value = entry.get(key)
    return value if isinstance(value, Mapping) else {}


class Analysis(ABC):
    """One analysis over every tracked layer of a run."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[tuple[str, ...]] = ()
    state_version: ClassVar[int] = 1
    runs: ClassVar[str] = OFF
    # JSON keys the analysis adds to each layer's entry, and its table columns.
    keys: ClassVar[tuple[str, ...]] = ()
    columns: ClassVar[tuple[Column, ...]] = ()
    # Scored from the saturation moments alone (no state of its own): every store has what it needs.
    derived: ClassVar[bool] = False
    # update() also takes each sample's input index in the whole data set (reservoirs keyed by it).
    wants_index: ClassVar[bool] = False
    # update() also takes `source`, an affine layer's input as samples (taps.layers.AffineInput), when the run
    # has it: the analysis may measure the layer's output through it (saturation, docs/method.md sec. 1).
    wants_affine: ClassVar[bool] = False
    # Combines the saturation moments with sums of its own over the same outputs in a solve that small rounding
    # differences would move (a ridge probe): the run then sums every layer's outputs (no affine input route).
    output_moments: ClassVar[bool] = False
    # update() gets every position / real token of a layer's output as a sample, whatever the run's reduction
    # (a unit that fires at one position of one input is alive, though its pooled mean may be negative); the
    # real tokens of a padded batch may come in several calls, a block of inputs each (taps.reduce.position_blocks).
    positions: ClassVar[bool] = False
    # After the fit pass the engine runs the model over labelled evaluation data: `prepare` reads the fit
    # pass' state, then `evaluate` gets every layer's evaluation samples (engine/evaluate.py).
    eval_pass: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self, options: object | None = None, device: torch.device | str | None = None) -> None:
        self.options = self.Options() if options is None else options
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

    def finish(self, module: torch.nn.Module) -> None:  # noqa: B027 - optional hook, most analyses need none
        """Called once after the last batch, with the model (data-free analyses compute here)."""

    def prepare(self, state: CheckpointState) -> None:  # noqa: B027 - only analyses with an eval pass
        """Before the evaluation pass: read what the fit pass measured (every layer's moments and elements)."""

    def evaluate(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:  # noqa: B027
        """Add one batch of a layer's evaluation samples (after `prepare`); `labels` as in `update`."""

    @classmethod
    def column_bytes(cls, options: object) -> int:
        """Bytes the analysis holds per layer and column of its width while a pass runs, besides the moments
        the memory plan counts anyway (engine/plan.py): a reservoir of R float64 rows is 8 R. Default 0 (a few
        numbers per unit, or nothing width-sized)."""
        return 0

    @staticmethod
    def across(entries: Sequence[Mapping[str, object]]) -> list[Mapping[str, object]] | None:
        """Keys relating a layer to the others (a gain over the previous layer), from every layer's JSON entry
        in forward order: one mapping per layer to add to its entry; None adds nothing."""
        return None

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        """The JSON keys this analysis adds to a layer's entry, from its moments, this analysis' state element
        and the elements of the analyses it requires (pure); None adds nothing."""
        return None

    @staticmethod
    def flags(entry: Mapping[str, object]) -> list[str]:
        """Words for the table's flags column from the layer's JSON entry (e.g. '12% dead units')."""
        return []


class LayerAnalysis(Analysis):
    """An analysis that adds its own keys to each layer's result (every analysis but saturation)."""


class DerivedAnalysis(LayerAnalysis):
    """An analysis scored from the saturation moments alone: nothing to record, merge or store."""

    derived = True
    runs = ON

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        return None

    def state(self) -> dict[str, object]:
        return {}

    def merge(self, other: Mapping[str, object]) -> None:
        return None

    def reset(self) -> None:
        return None
