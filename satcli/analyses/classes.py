"""Class/cross-class spectra (Papyan 2020, docs/method.md sec. 4): per-class counts and shifted sums per layer.

With channelwise or token samples every sample carries its input's label. Labels below 0 mean "no label".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from satcli.analyses.base import LABELLED, Column, LayerAnalysis, entry_of, percent_cell
from satcli.core.blocks import float64_sums
from satcli.core.classes import class_spectra
from satcli.core.state import ClassStats, LayerStats
from satcli.taps.layers import Layer


@dataclass
class _ClassSums:
    """One layer's running per-class state on the device; rows follow `labels` (order of first sight)."""

    shift: torch.Tensor
    labels: list[int]
    counts: torch.Tensor
    sums: torch.Tensor
    unlabeled: int = 0


@dataclass(frozen=True)
class _Groups:
    """A batch's labels by value: sorted `values`, each known sample's index into them, their counts."""

    values: list[int]
    inverse: torch.Tensor
    counts: torch.Tensor
    known: torch.Tensor | None  # None when every sample has a label
    unlabeled: int


class ClassesAnalysis(LayerAnalysis):
    """Per-class counts and float64 sums of `samples - shift` for every layer (C x d memory)."""

    name = "classes"
    runs = LABELLED
    keys = ("classes",)
    columns = (Column("between", "classes", lambda entry: percent_cell(_between(entry)), True),)
    summary = "class/cross-class spectra (docs/method.md sec. 4); on when the data carry labels"

    def __init__(self, options: object | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.layers: dict[str, _ClassSums] = {}
        self._last: tuple[torch.Tensor, _Groups] | None = None

    def update(
        self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> None:
        if labels is None:
            return
        d = samples.shape[-1]
        x, y, weight = _per_input(samples.detach().to(self.device), labels.to(self.device).reshape(-1))
        if x.shape[0] == 0:
            return
        state = self.layers.get(layer.name)
        if state is None:
            mean = x.sum(dim=0) / (weight * x.shape[0])
            if not bool(torch.isfinite(mean).all()):
                return  # the saturation accumulator skips this batch too
            state = self.layers[layer.name] = _ClassSums(mean, [], _zeros(0, self.device), _zeros((0, d), self.device))
        centered = x.sub_(state.shift, alpha=weight)  # x is this call's own float64 copy
        if not bool(torch.isfinite(centered.sum())):
            return
        groups = self._groups(y)
        state.unlabeled += weight * groups.unlabeled
        rows = self._rows(state, groups.values)
        state.counts.index_add_(0, rows, groups.counts * weight)
        state.sums.index_add_(0, rows[groups.inverse], centered if groups.known is None else centered[groups.known])

    def _groups(self, y: torch.Tensor) -> _Groups:
        """The batch's labels grouped by value; every layer of a batch has the same labels, so it is kept."""
        last = self._last
        if last is not None and last[0].shape == y.shape and torch.equal(last[0], y):
            return last[1]
        known = y >= 0
        every = bool(known.all())
        values, inverse, counts = torch.unique(y if every else y[known], return_inverse=True, return_counts=True)
        unlabeled = 0 if every else int((~known).sum())
        groups = _Groups(values.tolist(), inverse, counts.to(torch.float64), None if every else known, unlabeled)
        self._last = (y.clone(), groups)
        return groups

    def state(self) -> dict[str, object]:
        return {name: _as_class_stats(s) for name, s in self.layers.items()}

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, ClassStats)
            shift = torch.as_tensor(np.asarray(element.shift), dtype=torch.float64, device=self.device)
            state = self.layers.get(name)
            if state is None:
                d = shift.shape[0]
                state = self.layers[name] = _ClassSums(shift, [], _zeros(0, self.device), _zeros((0, d), self.device))
            counts = torch.as_tensor(np.asarray(element.counts), dtype=torch.float64, device=self.device)
            sums = torch.as_tensor(np.asarray(element.sums), dtype=torch.float64, device=self.device)
            # Re-express the other part's sums around this shift: S' = S + n_c (c_other - c_self).
            sums = sums + counts[:, None] * (shift - state.shift)
            rows = self._rows(state, [int(v) for v in np.asarray(element.labels)])
            state.counts.index_add_(0, rows, counts)
            state.sums.index_add_(0, rows, sums)
            state.unlabeled += int(element.unlabeled)

    def reset(self) -> None:
        self.layers.clear()
        self._last = None

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        assert isinstance(element, ClassStats)
        return {"classes": class_spectra(stats, element).to_dict()}

    def _rows(self, state: _ClassSums, values: list[int]) -> torch.Tensor:
        """Row index of each label value, adding rows for labels not seen before."""
        index = {label: i for i, label in enumerate(state.labels)}
        new = [v for v in values if v not in index]
        if new:
            d = state.sums.shape[1]
            for v in new:
                index[v] = len(state.labels)
                state.labels.append(v)
            state.counts = torch.cat([state.counts, _zeros(len(new), self.device)])
            state.sums = torch.cat([state.sums, _zeros((len(new), d), self.device)])
        return torch.tensor([index[v] for v in values], dtype=torch.int64, device=self.device)


def _between(entry: Mapping[str, object]) -> object:
    """tr Sigma_B / tr Sigma_T of a layer's JSON entry: the share of its variance that separates the classes."""
    return entry_of(entry, "classes").get("between_share")


def _per_input(samples: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(float64 rows, their labels, samples per row): an input's samples summed when they share its label.

    Channelwise and token samples (B, ..., d) all carry their input's label, so per-class sums only need
    each input's float64 sum: B rows instead of a float64 copy of every position. The rows are always a
    new tensor (the caller centres them in place).
    """
    d = samples.shape[-1]
    if samples.ndim > 2 and samples.shape[0] > 0:
        per_input = samples.shape[1:-1].numel()
        grid = labels.reshape(samples.shape[0], -1) if labels.numel() == samples.shape[0] * per_input else None
        if per_input > 1 and grid is not None and bool((grid == grid[:, :1]).all()):
            return float64_sums(samples, per_input=True), grid[:, 0], per_input
    rows = samples.reshape(-1, d)
    return (rows.clone() if rows.dtype == torch.float64 else rows.to(torch.float64)), labels, 1


def _zeros(shape: int | tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.float64, device=device)


def _as_class_stats(state: _ClassSums) -> ClassStats:
    """The state as float64 numpy with classes sorted by label value."""
    order = np.argsort(np.asarray(state.labels, dtype=np.int64), kind="stable")
    return ClassStats(
        labels=np.asarray(state.labels, dtype=np.int64)[order],
        counts=state.counts.cpu().numpy().astype(np.int64)[order],
        sums=state.sums.cpu().numpy()[order],
        shift=state.shift.cpu().numpy(),
        unlabeled=int(state.unlabeled),
    )
