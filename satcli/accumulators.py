"""Exact streaming mean and covariance per layer (METHOD.md sec. 1, Chan et al. parallel merge).

The maths lives in pure functions on ``Moments``; ``CovarianceAccumulator`` wraps them with the
torchmetrics-style ``update / compute / reset / merge`` life cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Moments:
    """Sample count, float64 mean (d,) and float64 sum of centered outer products M2 (d, d)."""

    n: int
    mean: torch.Tensor
    m2: torch.Tensor

    @staticmethod
    def empty(width: int, device: torch.device | str | None = None) -> Moments:
        """The moments of no samples."""
        return Moments(
            0,
            torch.zeros(width, dtype=torch.float64, device=device),
            torch.zeros(width, width, dtype=torch.float64, device=device),
        )


def batch_moments(x: torch.Tensor) -> Moments:
    """Moments of one (n, d) batch: its own mean and centered Gram matrix, computed in float64."""
    if x.ndim != 2:
        raise ValueError(f"expected an (n, d) batch, got shape {tuple(x.shape)}")
    x64 = x.detach().to(torch.float64)
    n = x64.shape[0]
    if n == 0:
        return Moments.empty(x64.shape[1], x64.device)
    mean = x64.mean(dim=0)
    centered = x64 - mean
    return Moments(n, mean, centered.T @ centered)


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s parallel merge: exact, and independent of how the samples were split."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + torch.outer(delta, delta) * (a.n * b.n / n)
    return Moments(n, mean, m2)


def covariance(m: Moments) -> torch.Tensor:
    """Unbiased covariance M2 / (n - 1); all zeros below two samples."""
    if m.n < 2:
        return torch.zeros_like(m.m2)
    return m.m2 / (m.n - 1)


class CovarianceAccumulator:
    """Streams (n, d) batches of one layer into exact float64 moments on the activations' device."""

    def __init__(self, width: int, device: torch.device | str | None = None) -> None:
        self.width = width
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        self.moments = Moments.empty(self.width, self.device)
        self.nonfinite = False

    def update(self, x: torch.Tensor) -> None:
        """Add one batch of samples, shape (n, width). A batch with NaN/inf only sets the non-finite flag."""
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"expected (n, {self.width}) samples, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            self.nonfinite = True
            return
        self.moments = merge_moments(self.moments, batch_moments(x.to(self.device)))

    def merge(self, other: CovarianceAccumulator) -> None:
        """Fold another accumulator of the same layer into this one (two halves, two processes)."""
        if other.width != self.width:
            raise ValueError(f"cannot merge width {other.width} into width {self.width}")
        self.moments = merge_moments(self.moments, _moved(other.moments, self.device))
        self.nonfinite = self.nonfinite or other.nonfinite

    def compute(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(n, mean, covariance), all float64."""
        return self.moments.n, self.moments.mean, covariance(self.moments)

    @property
    def n(self) -> int:
        """Samples accumulated so far."""
        return self.moments.n


def _moved(m: Moments, device: torch.device) -> Moments:
    return Moments(m.n, m.mean.to(device), m.m2.to(device))
