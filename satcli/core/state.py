"""What a finished run knows about each layer: metadata and float64 streaming statistics.

The engine produces these, the store keeps them, and scoring turns them into results, so analyze and
report score through the same functions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LayerMeta:
    """What a tracked layer is: its module path, type, width and how its samples were formed."""

    name: str
    type: str
    kind: str
    width: int
    order: int
    reduction: str
    activations_reduction: str


@dataclass(frozen=True)
class LayerStats:
    """A layer's streaming moments: enough to recompute the covariance and to merge partial runs.

    `m2` is None when read from a store that did not keep it: enough to re-score, not to merge or project.
    `rounding`: the proven bound on ||cov - cov_exact||_F of a ``--precision float32`` run (covariance units,
    docs/method.md sec. 1); None for a float64 run or a store that did not record one.
    """

    samples: int
    mean: np.ndarray
    m2: np.ndarray | None
    eigenvalues: np.ndarray
    nonfinite: bool
    rounding: float | None = None


@dataclass(frozen=True)
class CheckpointMeta:
    """Where a checkpoint's numbers came from: the model file, the data and the run's settings."""

    model_path: str
    model_sha256: str
    model_format: str
    data_spec: str
    options: dict
    thresholds: dict


@dataclass(frozen=True)
class ClassStats:
    """A layer's per-class float64 sums (docs/method.md sec. 4): C x d memory, merged by addition.

    `labels` are the distinct label values seen (sorted), `counts` their sample counts and `sums` the
    per-class sums of `samples - shift`; the shift keeps the sums small when a layer's mean is large.
    """

    labels: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    shift: np.ndarray
    unlabeled: int = 0


@dataclass(frozen=True)
class OpaqueState:
    """A stored analysis state this satcli cannot read (no analysis of that name, or a newer state version):
    its group's attributes, datasets and subgroups, kept so that merge and append copy it back unchanged."""

    attrs: dict[str, object]
    datasets: dict[str, np.ndarray]
    groups: dict[str, OpaqueState]


@dataclass(frozen=True)
class LayerState:
    """Everything a finished run keeps about one layer: what it is, its moments, and other analyses' state.

    `entries`: other analyses' score entries as computed while m2 was at hand (they do not depend on the
    thresholds); a store that keeps no m2 keeps these, and re-scoring takes them instead of recomputing.
    """

    meta: LayerMeta
    stats: LayerStats
    extras: dict[str, object]
    entries: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointState:
    """One scored-to-be checkpoint: where it came from, its layers in forward order, and how many inputs ran."""

    meta: CheckpointMeta
    layers: tuple[LayerState, ...]
    num_inputs: int
