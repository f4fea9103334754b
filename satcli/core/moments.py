"""Exact mean and covariance as pure functions on float64 moments (docs/method.md sec. 1, Chan et al. merge)."""

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
