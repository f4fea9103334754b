"""google-research representation_similarity's feature_space_linear_cka (Kornblith et al. 2019), re-derived in
numpy float64 from the paper's formula: the independent reference of the CKA tests."""

from __future__ import annotations

import numpy as np


def reference_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA of two sample sets of the same inputs; `debiased` uses the unbiased HSIC (Song et al. 2012)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    n = x.shape[0]

    def unbiased(frob2: float, rows_x: np.ndarray, rows_y: np.ndarray) -> float:
        return frob2 - n / (n - 2) * rows_x @ rows_y + rows_x.sum() * rows_y.sum() / ((n - 1) * (n - 2))

    top = np.linalg.norm(x.T @ y) ** 2
    nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if debiased:
        rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        top = unbiased(top, rx, ry)
        nx, ny = np.sqrt(unbiased(nx**2, rx, rx)), np.sqrt(unbiased(ny**2, ry, ry))
    return float(top / (nx * ny))
