"""Activation health of a layer's units (docs/method.md, "Activation health"): dead and dormant shares.

Pure functions on the float64 per-unit sums the health analysis keeps (maximum, sum of |x|, sample count),
which merge exactly over batches, processes and shards.
"""

from __future__ import annotations

import numpy as np

# Sokar et al. 2023 ("The dormant neuron phenomenon in deep reinforcement learning"): tau = 0.1.
DORMANT_TAU = 0.1


def dead_units(maximum: np.ndarray) -> np.ndarray:
    """Units whose largest sample is <= 0: a following ReLU never fires on the data."""
    return np.asarray(maximum, dtype=np.float64) <= 0.0


def dormant_units(abs_sum: np.ndarray, samples: int, tau: float = DORMANT_TAU) -> np.ndarray:
    """Units whose mean |x| is at most tau times the layer's average mean |x| over its units."""
    mean_abs = np.asarray(abs_sum, dtype=np.float64) / max(int(samples), 1)
    return mean_abs <= tau * float(mean_abs.mean()) if mean_abs.size else np.zeros(0, dtype=bool)


def health(maximum: np.ndarray, abs_sum: np.ndarray, samples: int, tau: float = DORMANT_TAU) -> dict[str, float]:
    """The shares of a layer's units that are dead and dormant."""
    width = max(int(np.asarray(maximum).size), 1)
    return {
        "dead": float(dead_units(maximum).sum()) / width,
        "dormant": float(dormant_units(abs_sum, samples, tau).sum()) / width,
    }
