"""The Singular Value Representation's maths on float64 numpy arrays (docs/method.md sec. 5).

A layer's matrix is factored ``W = sum_j s_j u_j v_j^T`` (top modes, descending, numbered from 0). For a
pair of layers with ``n`` channels between them, ``u_j`` of the first layer is read as ``(n, z_u)`` and
``v_i`` of the second as ``(n, z_v)`` (the spatial positions each carries; 1 when it has none), and

    A_ij = sum_{p, q} < v_i[:, p], u_j[:, q] >^2,     z = z_u * z_v.

Under random directions ``E[A] = 1/n`` and ``z n A`` is about chi-squared with z degrees of freedom, so an
edge is significant when ``A_ij >= chi2_z^-1(1 - p) / (z n)`` with ``p = 1 - Phi(sigma)``. The plain SVR has
``z_u = 1``; the ``cosvr`` of Meller & Berkouk's script (danmlr/svr) moves a convolution's kernel positions
onto ``u`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

FULL_SVD_MAX_ENTRIES = 4_000_000


@dataclass(frozen=True)
class Modes:
    """The top singular triplets of one matrix: ``s`` (m,), ``u`` (rows, m), ``v`` (cols, m)."""

    s: np.ndarray
    u: np.ndarray
    v: np.ndarray


@dataclass(frozen=True)
class PairSvr:
    """The adjacency ``A`` (modes of the second layer x modes of the first) and its significance."""

    adjacency: np.ndarray
    z: int
    n: int
    threshold: float

    @property
    def significant(self) -> np.ndarray:
        """Boolean mask of the significant edges."""
        return self.adjacency >= self.threshold

    def edges(self) -> list[tuple[int, int, float]]:
        """Significant edges as (to_mode i, from_mode j, A_ij), strongest first."""
        rows, cols = np.nonzero(self.significant)
        found = [(int(i), int(j), float(self.adjacency[i, j])) for i, j in zip(rows, cols, strict=True)]
        return sorted(found, key=lambda e: (-e[2], e[0], e[1]))

    def strongest(self) -> tuple[int, int, float]:
        """(to_mode, from_mode, value) of the largest entry of A, significant or not."""
        i, j = np.unravel_index(int(np.argmax(self.adjacency)), self.adjacency.shape)
        return int(i), int(j), float(self.adjacency[i, j])


def top_modes(matrix: np.ndarray, max_modes: int) -> Modes:
    """The top ``min(max_modes, rank bound)`` singular triplets by descending singular value, in float64.

    A full LAPACK SVD when the matrix is small enough, otherwise a truncated one (ARPACK, fixed start).
    """
    a = np.asarray(matrix, dtype=np.float64)
    m = min(max_modes, *a.shape)
    if m < min(a.shape) and a.size > FULL_SVD_MAX_ENTRIES:
        v0 = np.ones(min(a.shape)) / np.sqrt(min(a.shape))
        u, s, vt = sparse.linalg.svds(a, k=m, v0=v0)
    else:
        u, s, vt = np.linalg.svd(a, full_matrices=False)
    order = np.argsort(-s, kind="stable")[:m]
    return Modes(s[order], u[:, order], vt[order].T)


def threshold(z: int, n: int, sigma: float) -> float:
    """The significance threshold ``chi2_z^-1(1 - p) / (z n)`` with ``p = 1 - Phi(sigma)``."""
    return float(stats.chi2.isf(tail_probability(sigma), z)) / (z * n)


def tail_probability(sigma: float) -> float:
    """p = 1 - Phi(sigma), the share of significant edges expected under the null (1.35e-3 at 3)."""
    return float(stats.norm.sf(sigma))


def adjacency(u_first: np.ndarray, v_second: np.ndarray, n: int) -> np.ndarray:
    """``A_ij = sum_{p,q} <v_i[:, p], u_j[:, q]>^2`` for ``u`` (n*z_u, m1) and ``v`` (n*z_v, m2), as (m2, m1).

    Rows of ``u`` and ``v`` are channel-major: index ``c*z + p``.
    """
    m1, m2 = u_first.shape[1], v_second.shape[1]
    u = u_first.reshape(n, -1, m1).reshape(n, -1)  # (n, z_u * m1), column q*m1 + j
    v = v_second.reshape(n, -1, m2)  # (n, z_v, m2)
    total = np.zeros((m2, m1))
    for p in range(v.shape[1]):
        products = v[:, p, :].T @ u  # (m2, z_u * m1)
        total += (products**2).reshape(m2, -1, m1).sum(axis=1)
    return total


def pair_svr(first: Modes, second: Modes, n: int, z_u: int, z_v: int, sigma: float) -> PairSvr:
    """The SVR of one composing pair: adjacency, z, n and the threshold at ``sigma``."""
    a = adjacency(first.u, second.v, n)
    z = z_u * z_v
    return PairSvr(a, z, n, threshold(z, n, sigma))


def edge_sigma(value: float, z: int, n: int) -> float:
    """The significance of one edge in sigma units: ``Phi^-1(1 - P(chi2_z >= z n A))``.

    An edge is significant at ``sigma`` exactly when its own sigma is at least ``sigma``.
    """
    p = float(stats.chi2.sf(value * z * n, z))
    return float(stats.norm.isf(p)) if p > 0 else float("inf")
