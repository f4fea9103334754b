"""Linear probes per layer (docs/method.md sec. 9): a ridge regression onto one-hot class targets, fitted from the
streamed float64 moments (saturation) and per-class sums (classes), so it merges exactly over batches, ranks and
shards; scored by its accuracy on evaluation data.

With n samples x of a layer (d units), labels in C classes and one-hot targets y:
Sigma = M2 / n, C_xy = (1/n) sum (x - mu_x)(y - mu_y)^T, whose column c is (n_c / n)(mu_c - mu_x);
W = (Sigma + alpha I)^-1 C_xy, b = mu_y - W^T mu_x, alpha = ridge * tr(Sigma) / d. This is sklearn's
Ridge(alpha=alpha * n, fit_intercept=True) on the raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from satcli.core.classes import class_offsets
from satcli.core.state import ClassStats, LayerStats

DEFAULT_RIDGE = 1e-3


@dataclass(frozen=True)
class ProbeFit:
    """A layer's fitted probe: class label values (C,), weights W (d, C) and bias b (C,), all float64."""

    labels: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    ridge: float
    samples: int

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The label of argmax_c (W^T x + b)_c for each row of `rows` (n, d)."""
        scores = np.asarray(rows, dtype=np.float64) @ self.weight + self.bias
        return self.labels[np.argmax(scores, axis=1)]


def fit_problem(stats: LayerStats, classes: ClassStats | None) -> str | None:
    """Why no probe can be fitted on a layer's state (None: it can)."""
    if classes is None:
        return "no per-class sums (the data carry no labels)"
    if stats.nonfinite:
        return "non-finite activations"
    if classes.unlabeled:
        return "samples without a label"
    if len(classes.labels) < 2:
        return f"{len(classes.labels)} class seen: needs at least 2"
    if int(np.sum(classes.counts)) != stats.samples:
        return f"class counts ({int(np.sum(classes.counts))}) differ from the layer's samples ({stats.samples})"
    return None


def fit_probe(stats: LayerStats, classes: ClassStats, ridge: float = DEFAULT_RIDGE) -> ProbeFit:
    """The ridge probe of docs/method.md sec. 9 from a layer's moments and per-class sums (see fit_problem)."""
    counts = np.asarray(classes.counts, dtype=np.float64)
    n = float(counts.sum())
    d = int(np.asarray(stats.mean).shape[0])
    m2 = np.asarray(stats.m2, dtype=np.float64)
    mu_x = np.asarray(stats.mean, dtype=np.float64)
    mu_y = counts / n
    cross = class_offsets(classes).T * mu_y  # (d, C): column c is (n_c / n)(mu_c - mu_x)
    total = float(np.trace(m2)) / n
    if total > 0:
        # (Sigma + alpha I)^-1 C_xy = (M2 + n alpha I)^-1 (n C_xy): one d x d copy (the solver overwrites it),
        # no Sigma, identity or sum formed; Cholesky, since M2 + n alpha I is positive definite.
        system = m2.copy()
        system.flat[:: d + 1] += n * ridge * total / d
        weight = scipy.linalg.solve(system, n * cross, assume_a="pos", overwrite_a=True, check_finite=False)
    else:  # every sample the same: the probe predicts the most frequent class
        weight = np.zeros((d, len(counts)))
    bias = mu_y - weight.T @ mu_x
    return ProbeFit(np.asarray(classes.labels, dtype=np.int64), weight, bias, float(ridge), int(n))


def gains(accuracies: Sequence[float | None]) -> list[float | None]:
    """Each layer's accuracy minus the previous layer's (forward order); None for the first or a missing one."""
    return [
        None if i == 0 or acc is None or accuracies[i - 1] is None else acc - accuracies[i - 1]  # type: ignore[operator]
        for i, acc in enumerate(accuracies)
    ]
