"""Spectral metrics: eigenvalues, intrinsic dimensionality k and layer saturation (docs/method.md sec. 1).

Pure functions on float64 numpy arrays, so they can be re-run from a store without a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

DEFAULT_DELTA = 0.99
# A cumulative share within this relative distance below delta counts as reaching it, so a share that
# lands exactly on delta in exact arithmetic is not lost to one ulp of rounding in the running sum.
SHARE_RTOL = 1e-12
# Total variance at or below this fraction of the squared mean norm is rounding noise of a constant layer.
DEAD_RTOL = 1e-20

FLAG_DEAD = "dead"
FLAG_NONFINITE = "non-finite"
FLAG_UNDERSAMPLED = "undersampled"
# k of a --precision float32 run is not certified: the exact k may be another in k_low..k_high (method sec. 1).
FLAG_ROUNDING = "float32"


@dataclass(frozen=True)
class LayerScore:
    """The numbers satcli reports for one tracked layer."""

    name: str
    type: str
    width: int
    samples: int
    k: int | None
    saturation: float | None
    flags: tuple[str, ...] = ()
    reduction: str = "none"
    # The JSON keys other analyses add to the layer's entry (e.g. "classes": {...}), JSON-ready.
    extras: Mapping[str, object] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        """True when the layer has a saturation that enters the average (not dead, not non-finite)."""
        return self.saturation is not None and FLAG_DEAD not in self.flags

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "type": self.type,
            "width": self.width,
            "samples": self.samples,
            "k": self.k,
            "saturation": self.saturation,
            "flags": list(self.flags),
            "reduction": self.reduction,
            **{key: dict(value) if isinstance(value, Mapping) else value for key, value in self.extras.items()},
        }


def eigenvalues(cov: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric covariance, descending, negatives (rounding) clipped to 0."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov.size == 0:
        return np.zeros(0)
    values = np.linalg.eigvalsh(cov)[::-1]
    return np.clip(values, 0.0, None)


def gram_eigenvalues(rows: np.ndarray, width: int) -> np.ndarray:
    """Covariance eigenvalues of n < width samples (rows) from their n x n centered Gram matrix.

    X_c X_c^T and X_c^T X_c share their non-zero eigenvalues, so the d x d decomposition is not needed;
    the result is padded with zeros to `width` values, descending, like ``eigenvalues``.
    """
    x = np.asarray(rows, dtype=np.float64)
    centered = x - x.mean(axis=0)
    small = eigenvalues(centered @ centered.T / (x.shape[0] - 1))
    out = np.zeros(width)
    out[: min(width, small.shape[0])] = small[:width]
    return out


def intrinsic_dimension(eigs: np.ndarray, delta: float = DEFAULT_DELTA) -> int:
    """Smallest k whose top-k eigenvalues hold at least a share delta of the total; 0 when the total is 0."""
    if not 0.0 < delta <= 1.0:
        raise ValueError(f"delta must be in (0, 1], got {delta}")
    values = np.sort(np.clip(np.asarray(eigs, dtype=np.float64), 0.0, None))[::-1]
    total = float(values.sum())
    if total <= 0.0:
        return 0
    cumulative = np.cumsum(values)
    reached = cumulative >= delta * total * (1.0 - SHARE_RTOL)
    return int(np.argmax(reached)) + 1


def is_dead(eigs: np.ndarray, mean: np.ndarray) -> bool:
    """A layer is dead when its total variance is zero up to rounding of its mean."""
    total = float(np.clip(eigs, 0.0, None).sum())
    return total <= DEAD_RTOL * float(np.dot(mean, mean))


def score_layer(
    name: str,
    type_: str,
    n: int,
    mean: np.ndarray,
    eigs: np.ndarray,
    delta: float = DEFAULT_DELTA,
    nonfinite: bool = False,
    reduction: str = "none",
) -> LayerScore:
    """Turn one layer's sample count, mean and covariance eigenvalues into k, saturation and flags."""
    width = int(np.asarray(mean).shape[0])
    flags: list[str] = []
    if nonfinite:
        return LayerScore(name, type_, width, n, None, None, (FLAG_NONFINITE,), reduction)
    if n < 2:
        return LayerScore(name, type_, width, n, None, None, (FLAG_UNDERSAMPLED,), reduction)
    if is_dead(eigs, mean):
        flags.append(FLAG_DEAD)
        k = 0
    else:
        k = intrinsic_dimension(eigs, delta)
    if n <= width:
        flags.append(FLAG_UNDERSAMPLED)
        k = min(k, n - 1)
    return LayerScore(name, type_, width, n, k, k / width if width else 0.0, tuple(flags), reduction)
