"""Activation health (docs/method.md, "Activation health"): per unit the maximum, the count of samples > 0
and the sum of |x|, so dead units (never > 0) and dormant ones (Sokar et al. 2023) can be counted."""

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
    positive: torch.Tensor
    abs_sum: torch.Tensor
    samples: int = 0


class HealthAnalysis(LayerAnalysis):
    """Per-unit maximum, positive count and float64 sum of |x| per layer (3 d numbers); merges exactly."""

    name = "health"
    Options = HealthOptions
    runs = ON
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
            zeros = torch.zeros(width, dtype=torch.float64, device=self.device)
            sums = self.layers[name] = _Sums(maximum, torch.zeros(width, dtype=torch.int64, device=self.device), zeros)
        return sums

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        rows = samples.detach().reshape(-1, samples.shape[-1]).to(self.device)
        sums = self._sums(layer.name, rows.shape[-1])
        if rows.shape[0] == 0:
            return
        torch.maximum(sums.maximum, rows.amax(dim=0).to(torch.float64), out=sums.maximum)
        sums.positive += (rows > 0).sum(dim=0)
        sums.abs_sum += rows.abs().sum(dim=0, dtype=torch.float64)
        sums.samples += int(rows.shape[0])

    def state(self) -> dict[str, object]:
        return {
            name: {
                "maximum": s.maximum.cpu().numpy(),
                "positive": s.positive.cpu().numpy(),
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
            sums.positive += torch.as_tensor(np.asarray(element["positive"]), device=self.device)
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
