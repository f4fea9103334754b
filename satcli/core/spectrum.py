"""Spectrum summaries of a layer's covariance eigenvalues (docs/method.md, "Spectrum summaries").

Pure functions on the eigenvalues alone, so every store (old ones too) re-scores them without a model.
"""

from __future__ import annotations

import numpy as np

# alpha-ReQ's fit: the first DECAY_TERMS eigenvalues, those above DECAY_FLOOR times the largest.
DECAY_TERMS = 100
DECAY_FLOOR = 1e-10


def _descending(eigs: np.ndarray) -> np.ndarray:
    return np.sort(np.clip(np.asarray(eigs, dtype=np.float64), 0.0, None))[::-1]


def effective_rank(eigs: np.ndarray) -> float | None:
    """exp of the entropy of p_i = lambda_i / sum lambda (Roy & Vetterli 2007, RankMe's form); terms with p_i = 0
    left out. None when the total variance is 0."""
    values = _descending(eigs)
    total = float(values.sum())
    if total <= 0.0:
        return None
    p = values[values > 0.0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def participation_ratio(eigs: np.ndarray) -> float | None:
    """(sum lambda)^2 / sum lambda^2; None when the total variance is 0."""
    values = _descending(eigs)
    squares = float(np.sum(values**2))
    return float(values.sum()) ** 2 / squares if squares > 0.0 else None


def spectral_decay(eigs: np.ndarray) -> float | None:
    """alpha-ReQ's decay: the least-squares slope of -log lambda_i against log i over i = 1 .. min(d, 100), over
    the lambda_i above 1e-10 lambda_1. None with fewer than two such eigenvalues."""
    values = _descending(eigs)[:DECAY_TERMS]
    if values.size == 0 or values[0] <= 0.0:
        return None
    index = np.arange(1, values.size + 1, dtype=np.float64)
    kept = values > DECAY_FLOOR * values[0]
    if int(kept.sum()) < 2:
        return None
    x, y = np.log(index[kept]), -np.log(values[kept])
    x_c = x - x.mean()
    return float(np.dot(x_c, y - y.mean()) / np.dot(x_c, x_c))


def spectrum_summary(eigs: np.ndarray) -> dict[str, float | None]:
    """The three summaries, keyed as a layer's JSON entry has them."""
    return {
        "effective_rank": effective_rank(eigs),
        "participation_ratio": participation_ratio(eigs),
        "spectral_decay": spectral_decay(eigs),
    }
