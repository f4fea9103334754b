"""Class/cross-class structure of a layer (docs/method.md sec. 4, Papyan 2020) as pure functions.

Input: the layer's total moments (n, mean, M2) and its per-class counts and shifted sums. Only class
means and counts are kept (C x d), never per-class covariances; the within-class scatter follows as
``Sigma_W = Sigma_T - Sigma_B``. Class-mean offsets are formed from the shifted sums directly
(``mu_c - mu = S_c / n_c - S / n``), so a layer whose mean is far larger than its spread loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg

from satcli.core.state import ClassStats, LayerStats

# Eigenvalues of Sigma_B at or below this share of its largest count as zero (rank and pseudo-inverse).
RELATIVE_CUT = 1e-10

# Above this width the largest eigenvalue of Sigma_W comes from Lanczos iterations instead of a full eigvalsh.
LANCZOS_MIN_WIDTH = 256


@dataclass(frozen=True)
class ClassSpectra:
    """The class/cross-class numbers of one layer; every number is None when it is undefined."""

    num_classes: int
    between_share: float | None
    nc1: float | None
    rank_between: int | None
    outliers: int | None
    class_mean_cosine: float | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the `classes` entry of a layer)."""
        return {
            "num_classes": self.num_classes,
            "between_share": self.between_share,
            "nc1": self.nc1,
            "rank_between": self.rank_between,
            "outliers": self.outliers,
            "class_mean_cosine": self.class_mean_cosine,
            "notes": list(self.notes),
        }


def class_offsets(classes: ClassStats) -> np.ndarray:
    """(C, d) class-mean offsets ``mu_c - mu`` from the shifted sums, without forming the large means."""
    counts = np.asarray(classes.counts, dtype=np.float64)
    sums = np.asarray(classes.sums, dtype=np.float64)
    total = sums.sum(axis=0) / counts.sum()
    return sums / counts[:, None] - total


def mean_pair_cosine(offsets: np.ndarray) -> float | None:
    """Mean of cos(a_c, a_c') over ordered pairs c != c' of non-zero offsets; None with fewer than two."""
    norms = np.linalg.norm(offsets, axis=1)
    keep = norms > 0
    if keep.sum() < 2:
        return None
    unit = offsets[keep] / norms[keep, None]
    gram = unit @ unit.T
    m = gram.shape[0]
    return float((gram.sum() - np.trace(gram)) / (m * (m - 1)))


def class_spectra(stats: LayerStats, classes: ClassStats) -> ClassSpectra:
    """between_share, nc1, rank_between, outliers and class_mean_cosine of one layer (docs/method.md sec. 4)."""
    num = len(classes.labels)
    notes = _notes(stats, classes)
    undefined = ClassSpectra(num, None, None, None, None, None, tuple(notes))
    if num < 2:
        return ClassSpectra(num, None, None, None, None, None, (*notes, f"{num} class seen: needs at least 2"))
    if stats.nonfinite or classes.unlabeled or stats.samples < 2:
        return undefined
    if stats.m2 is None:  # a store keeps m2 with class state; one without it cannot give Sigma_T
        return ClassSpectra(num, None, None, None, None, None, (*notes, "no moments (m2) stored"))
    n = float(np.sum(classes.counts))
    m2 = np.asarray(stats.m2, dtype=np.float64)  # Sigma_T = M2 / n, never formed: its scale goes on results
    a = _scaled_offsets(classes)  # Sigma_B = a^T a
    total = float(np.trace(m2)) / n
    if total <= 0.0:
        return ClassSpectra(num, None, None, None, None, None, (*notes, "no variance (dead layer)"))
    rank_between, nc1 = _between_rank_and_nc1(a, m2, n)
    edge = _largest_within(m2, a, n)
    values_t = _total_eigenvalues(stats, m2, n)
    return ClassSpectra(
        num_classes=num,
        between_share=float(np.sum(a * a)) / total,
        nc1=nc1 / num,
        rank_between=rank_between,
        outliers=int(np.sum(values_t > edge)),
        class_mean_cosine=mean_pair_cosine(class_offsets(classes)),
        notes=tuple(notes),
    )


def _scaled_offsets(classes: ClassStats) -> np.ndarray:
    """(C, d) offsets scaled by sqrt(n_c / n): Sigma_B = sum_c (n_c / n) (mu_c - mu)(mu_c - mu)^T = A^T A."""
    counts = np.asarray(classes.counts, dtype=np.float64)
    return class_offsets(classes) * np.sqrt(counts / counts.sum())[:, None]


def _between_rank_and_nc1(a: np.ndarray, m2: np.ndarray, n: float) -> tuple[int, float]:
    """rank(Sigma_B) and tr(Sigma_W Sigma_B^+), computed in the span of the C class offsets.

    Sigma_B = A^T A with A the (C, d) offsets scaled by sqrt(n_c / n). The thin SVD A = U S V^T gives its
    non-zero eigenvalues s^2 and eigenvectors V without a d x d eigendecomposition (O(C^2 d)), and without
    forming A A^T, whose rounding would be squared into the smallest kept eigenvalues (they dominate nc1).
    v^T Sigma_W v = v^T M2 v / n - |A v|^2 for each kept v: no d x d Sigma_T, Sigma_B or Sigma_W is formed.
    """
    _, singular, vt = np.linalg.svd(a, full_matrices=False)
    values = singular**2
    top = float(values.max()) if values.size else 0.0
    kept = values > RELATIVE_CUT * top if top > 0 else np.zeros_like(values, dtype=bool)
    v = vt[kept]
    within = (v @ m2 * v).sum(axis=1) / n - np.square(a @ v.T).sum(axis=0)
    return int(kept.sum()), float(np.sum(within / values[kept]))


def _largest_within(m2: np.ndarray, a: np.ndarray, n: float) -> float:
    """The largest eigenvalue of Sigma_W = M2 / n - A^T A: Lanczos on the operator x -> M2 x / n - A^T (A x)
    for wide layers (no d x d matrix formed), the formed matrix otherwise (see _largest_eigenvalue)."""
    d = m2.shape[0]
    if d > LANCZOS_MIN_WIDTH:
        operator = scipy.sparse.linalg.LinearOperator(
            (d, d), matvec=lambda x: m2 @ x / n - a.T @ (a @ x), dtype=np.float64
        )
        top = _lanczos_top(operator)
        if top is not None:
            return top
    return float(np.linalg.eigvalsh(m2 / n - a.T @ a)[-1])


def _lanczos_top(operator: scipy.sparse.linalg.LinearOperator | np.ndarray) -> float | None:
    """The largest eigenvalue by Lanczos (ARPACK, to machine precision, from a fixed start vector); None when
    it does not converge within a few restarts (clustered top eigenvalues)."""
    start = np.random.default_rng(0).standard_normal(operator.shape[0])
    try:
        top = scipy.sparse.linalg.eigsh(
            operator, k=1, which="LA", v0=start, tol=0, ncv=20, maxiter=60, return_eigenvectors=False
        )
    except scipy.sparse.linalg.ArpackError:
        return None
    return float(top[0])


def _total_eigenvalues(stats: LayerStats, m2: np.ndarray, n: float) -> np.ndarray:
    """Eigenvalues of Sigma_T = M2 / n: the layer's covariance eigenvalues (of M2 / (n - 1)) rescaled, when
    the saturation step computed them for these same samples, so the d x d decomposition runs once."""
    values = np.asarray(stats.eigenvalues, dtype=np.float64)
    if values.shape == (m2.shape[0],) and stats.samples == n and n > 1:
        return values * ((n - 1) / n)
    return np.linalg.eigvalsh(m2) / n


def _notes(stats: LayerStats, classes: ClassStats) -> list[str]:
    notes = []
    if classes.unlabeled:
        notes.append(f"{classes.unlabeled} samples without a label: class numbers need every sample labelled")
    if stats.nonfinite:
        notes.append("non-finite activations: no class numbers")
    singles = [str(label) for label, count in zip(classes.labels, classes.counts, strict=True) if count == 1]
    if singles:
        shown = ", ".join(singles[:5]) + (", ..." if len(singles) > 5 else "")
        notes.append(f"classes with a single sample: {shown}")
    counted = int(np.sum(classes.counts)) + int(classes.unlabeled)
    if not classes.unlabeled and counted != stats.samples and not stats.nonfinite:
        notes.append(f"class counts ({counted}) differ from the layer's samples ({stats.samples})")
    return notes
