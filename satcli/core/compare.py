"""`satcli compare`: per-layer saturation of several checkpoints side by side, with the change.

Layers are matched by name. The first checkpoint is the baseline: every other column's change is its
saturation minus the baseline's, in percentage points. A layer missing from a checkpoint has no score."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

from satcli.core.layer_order import merge_layer_order
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.errors import SatcliError


@dataclass(frozen=True)
class Column:
    """One compared checkpoint: a short label (A, B, ...), where it came from, and its scores."""

    label: str
    source: str
    result: CheckpointResult

    def score(self, layer: str) -> LayerScore | None:
        """The named layer's score, or None when this checkpoint has no such layer."""
        return next((s for s in self.result.layers if s.name == layer), None)


@dataclass(frozen=True)
class Comparison:
    """Checkpoints (the first is the baseline) and the union of their layer names in forward order."""

    columns: tuple[Column, ...]
    layers: tuple[str, ...]


def column_label(index: int) -> str:
    """A, B, ..., Z, then AA, AB, ... (spreadsheet style)."""
    letters = string.ascii_uppercase
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = letters[rest] + label
    return label


def change_pp(baseline: float | None, value: float | None) -> float | None:
    """value - baseline in percentage points, or None when either side is missing."""
    if baseline is None or value is None or not (math.isfinite(baseline) and math.isfinite(value)):
        return None
    return (value - baseline) * 100.0


def compare(entries: Sequence[tuple[str, CheckpointResult]]) -> Comparison:
    """Line up (source, result) pairs; raises SatcliError for fewer than two."""
    if len(entries) < 2:
        raise SatcliError(
            f"compare needs at least two checkpoints, got {len(entries)} "
            "(give two stores, or one store holding several checkpoints)"
        )
    columns = tuple(Column(column_label(i), source, result) for i, (source, result) in enumerate(entries))
    layers = merge_layer_order([s.name for s in c.result.layers] for c in columns)
    return Comparison(columns, tuple(layers))
