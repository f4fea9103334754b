"""Activation health (docs/method.md, "Activation health"): per unit the maximum and the sum of |x|, so dead
units (never > 0) and dormant ones (Sokar et al. 2023) can be counted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from satcli.analyses.base import ON, LayerAnalysis, entry_of
from satcli.core.health import DORMANT_TAU, health
from satcli.core.state import LayerStats
from satcli.taps.layers import Layer


@dataclass(frozen=True)
class HealthOptions:
    """`tau`: a unit is dormant when its mean |x| is at most tau times the layer's average mean |x|."""

    tau: float = DORMANT_TAU

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {self.tau}")


@dataclass
class _Sums:
    maximum: torch.Tensor
    abs_sum: torch.Tensor
    samples: int = 0


class HealthAnalysis(LayerAnalysis):
    """Per-unit maximum and float64 sum of |x| per layer (2 d numbers); merges exactly.

    State version 2; version 1 also kept a per-unit count of samples > 0 that no score read (it was half the
    cost of a pass over every conv position): a version-1 state still scores and merges, its count is dropped.
    """

    name = "health"
    Options = HealthOptions
    runs = ON
    state_version = 2
    positions = True  # dead = never > 0 at any position or real token, not a negative pooled mean
    keys = ("health",)
    summary = "shares of dead (max <= 0) and dormant (mean |x| <= tau x the average) units (docs/method.md sec. 11)"

    def __init__(self, options: HealthOptions | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.layers: dict[str, _Sums] = {}

    def _sums(self, name: str, width: int) -> _Sums:
        sums = self.layers.get(name)
        if sums is None:
            maximum = torch.full((width,), -torch.inf, dtype=torch.float64, device=self.device)
            sums = self.layers[name] = _Sums(maximum, torch.zeros(width, dtype=torch.float64, device=self.device))
        return sums

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        x = samples.detach().to(self.device)
        sums = self._sums(layer.name, int(x.shape[-1]))
        if x.numel() == 0:
            return
        maximum, abs_sum = _batch_health(x)
        torch.maximum(sums.maximum, maximum.to(torch.float64), out=sums.maximum)
        sums.abs_sum += abs_sum
        sums.samples += int(x[..., 0].numel())

    def state(self) -> dict[str, object]:
        return {
            name: {
                "maximum": s.maximum.cpu().numpy(),
                "abs_sum": s.abs_sum.cpu().numpy(),
                "samples": int(s.samples),
                "tau": float(self.options.tau),
            }
            for name, s in self.layers.items()
        }

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, Mapping)
            maximum = torch.as_tensor(np.asarray(element["maximum"]), dtype=torch.float64, device=self.device)
            sums = self._sums(name, int(maximum.shape[0]))
            torch.maximum(sums.maximum, maximum, out=sums.maximum)
            sums.abs_sum += torch.as_tensor(np.asarray(element["abs_sum"]), dtype=torch.float64, device=self.device)
            sums.samples += int(element["samples"])  # type: ignore[call-overload]
            self.options = HealthOptions(float(element.get("tau", self.options.tau)))  # type: ignore[arg-type]

    def reset(self) -> None:
        self.layers.clear()

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        assert isinstance(element, Mapping)
        if int(element["samples"]) == 0:  # type: ignore[call-overload]
            return None
        tau = float(element.get("tau", DORMANT_TAU))  # type: ignore[arg-type]
        return {"health": health(element["maximum"], element["abs_sum"], int(element["samples"]), tau)}  # type: ignore[arg-type, call-overload]

    @staticmethod
    def flags(entry: Mapping[str, object]) -> list[str]:
        dead = entry_of(entry, "health").get("dead")
        if not isinstance(dead, float) or dead <= 0:
            return []
        return [f"{dead * 100:.0f}% dead units" if dead >= 0.01 else "<1% dead units"]


# Values per block of the batch: the per-block temporaries (|x|, float64 sums) stay a few MiB, reused by the
# allocator, instead of batch-sized ones mapped afresh (and page-faulted) for every layer and batch.
_BLOCK = 1 << 18
# Positions per input from which a plane is reduced over its positions first (a long contiguous axis), and the
# most inputs a block sums over first otherwise: float32 sums of |x| never add more than max(these) terms.
_LONG = 64
_INPUTS = 1024


def _batch_health(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit of one batch of samples (B, ..., d): the maximum and the float64 sum of |x|.

    Samples whose units are contiguous (dense rows, tokens) are reduced as (n, d) rows, |x| summed in float64.
    Samples that are the positions of a channels-first output (a convolution: `x` is its channels-last view) are
    reduced as (B, d, positions) planes, |x| summed in float32 over one input's positions (or over at most 1,024
    inputs at one position, for maps of fewer than 64 positions), then in float64: the terms are >= 0, so no
    cancellation, each partial sum of n terms is within (n - 1) x 2^-24 relative (docs/method.md sec. 11).
    """
    width = int(x.shape[-1])
    if x.ndim == 2 or x.stride(-1) == 1:
        planes = x.reshape(-1, width).unsqueeze(-1)  # (n, d, 1)
        step = max(1, _BLOCK // width)
    else:
        planes = x.movedim(-1, 1).reshape(x.shape[0], width, -1)  # a view for a contiguous channels-first output
        step = max(1, min(_BLOCK // planes[0].numel(), _INPUTS))
    parts = [_block_health(planes[i : i + step]) for i in range(0, planes.shape[0], step)]
    maximum, abs_sum = parts[0]
    for m, a in parts[1:]:
        torch.maximum(maximum, m, out=maximum)
        abs_sum += a
    return maximum, abs_sum


def _block_health(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum and float64 sum of |x| per unit of (n, d, positions) planes.

    Long planes are reduced over their contiguous positions first, short ones over the inputs first (torch
    reduces a short inner axis several times slower). Rows (one position) sum |x| in float64 throughout.
    """
    first, then = (2, 0) if planes.shape[2] >= _LONG else (0, 1)
    exact = planes.shape[2] == 1 or planes.dtype == torch.float64
    abs_sums = planes.abs().sum(dim=first, dtype=torch.float64 if exact else torch.float32)
    return planes.amax(dim=first).amax(dim=then), abs_sums.sum(dim=then, dtype=torch.float64)
