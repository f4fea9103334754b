"""Error bound of ``--precision float32`` moments and the certificate that k is unchanged by it
(docs/method.md sec. 1, "Error bound of float32 blocks").

Pure numpy on scalars known at the end of a run: the bound needs n, the width d, the largest GEMM block b,
the trace of the float64 M2 and the mean minus the float32 shift; the certificate needs the covariance
eigenvalues. Rounding-error analysis after Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
sec. 3.1 (Lemma 3.1, eq. 3.4: gamma_n = n u / (1 - n u)); the probabilistic variant after Higham & Mary,
"A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41 (2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from satcli.core.spectral import DEFAULT_DELTA, SHARE_RTOL, intrinsic_dimension

U32 = 2.0**-24  # unit roundoff of float32 (round to nearest)
U64 = 2.0**-53  # unit roundoff of float64
# Default chance that the probabilistic bound fails, over every rounded term of a run.
FAILURE_PROBABILITY = 1e-6


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error of a product of n factors (1 + delta_i)^(+-1),
    |delta_i| <= u (Lemma 3.1); infinite when n u >= 1 (no bound)."""
    nu = n * u
    return math.inf if nu >= 1.0 else nu / (1.0 - nu)


def gamma_probable(n: int, u: float, lam: float) -> float:
    """Higham & Mary's gamma~_n(lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1 (Theorem 2.4): bounds the
    same product with probability at least 1 - 2 exp(-lambda^2 (1 - u)^2 / 2) when the rounding errors are
    independent, mean-zero random variables (a model, not a proof)."""
    return math.expm1(lam * math.sqrt(n) * u + n * u * u / (1.0 - u))


@dataclass(frozen=True)
class Float32Bound:
    """Bounds on ``||cov_float32 - cov_exact||_F`` (hence on the 2-norm and on |trace error|), covariance units.

    `eps` is proven (deterministic rounding-error analysis); `eps_probable` holds with probability at least
    1 - `failure_probability` under the Higham & Mary model of independent mean-zero rounding errors.
    """

    eps: float
    eps_probable: float
    block_rows: int
    failure_probability: float


def float32_error_bound(
    n: int,
    width: int,
    block_rows: int,
    trace_m2: float,
    offset: np.ndarray | float,
    *,
    z2: float | None = None,
    merged: MergedParts | None = None,
    failure_probability: float = FAILURE_PROBABILITY,
) -> Float32Bound:
    """The error bound of a float32-accumulated covariance, from the run's final float64 moments.

    n: samples; width: d; block_rows: b, the most rows one float32 GEMM block summed; trace_m2: trace of the
    computed M2 (= (n - 1) trace of the covariance); offset: the computed mean minus the float32 shift ``c``
    the blocks were centred on (a (d,) vector, or its 2-norm). Valid when ``c`` did not move during the run
    (it is then the sum over rows of ||x_i - c||^2 that the bound uses); see docs/method.md sec. 1.

    A shift that moved: pass `z2`, the float64 sum of the float32 blocks' Gram traces (each at its block's
    shift), and as `offset` a bound on the mean's distance from every shift the blocks used (||mean - c_final||
    plus the path length of the moves). `merged`: parts folded in by the Chan merge (their M2 bounds and mean
    errors); their bounds are proven ones, so they enter `eps_probable` unchanged.
    """
    if n < 2:
        raise ValueError(f"the covariance needs n >= 2 samples, got {n}")
    if block_rows < 1 or width < 1:
        raise ValueError(f"block_rows and width must be positive, got {block_rows} and {width}")
    off = float(np.linalg.norm(np.asarray(offset, dtype=np.float64)))
    # Float64 roundings between the sums and these inputs (m2's diagonal, its trace, the offset): d + 8 at most;
    # a summed z2 also went through the blocks' and batches' float64 additions (fewer than 2n + 4).
    rho = 1.0 + gamma(width + 8, U64)
    rho_z2 = 1.0 + gamma(width + 2 * n + 12, U64)
    deterministic = gamma(block_rows + 2, U32)
    terms = n * (width + 1) ** 2  # every rounded product term of every Gram entry of every block
    lam = math.sqrt(2.0 * math.log(2.0 * terms / failure_probability)) / (1.0 - U32)
    probable = min(gamma_probable(block_rows + 2, U32, lam), deterministic)
    parts = merged if merged is not None else MergedParts()
    bounds = []
    for g32 in (deterministic, probable):
        sums = _Sums(n, max(trace_m2, 0.0), off, rho, None if z2 is None else rho_z2 * max(z2, 0.0))
        bounds.append(_m2_bound(g32, sums, parts) / (n - 1))
    return Float32Bound(
        eps=bounds[0], eps_probable=bounds[1], block_rows=block_rows, failure_probability=failure_probability
    )


@dataclass(frozen=True)
class MergedParts:
    """Parts folded into the sums by the Chan merge, in M2 units (docs/method.md sec. 1): `error` = sum of
    their ||M2 error||_F bounds, `weight` = sum of m r (m a part's samples, r its mean's error bound), `near` =
    sum of m r (||mean_part - c|| - moved) at the merge (c the shift then, `moved` the shift's path length
    up to it) and `square` = sum of m r^2."""

    error: float = 0.0
    weight: float = 0.0
    near: float = 0.0
    square: float = 0.0


@dataclass(frozen=True)
class _Sums:
    """What the bound knows of the sums: n, trace(M2), ||mean - c|| (+ moves), the float64 rounding factor
    rho, and the float64 sum of block traces when the blocks were summed at moving shifts."""

    n: int
    trace_m2: float
    off: float
    rho: float
    z2: float | None


def mean_error(eps: float, n: int) -> float:
    """Bound on ||mean_computed - mean|| of a part whose M2 bound is eps (n - 1): its column sums' error is at
    most g sqrt(n Z2) and its M2 bound at least g Z2, so the mean's is at most sqrt(g eps (n - 1) / n), with g
    at most that of one block of all n rows (for a merged part too, by Cauchy-Schwarz over its parts)."""
    g32 = gamma(n + 2, U32)
    g = g32 + gamma(2 * n + 4, U64) * (1.0 + g32)
    return math.sqrt(g * max(eps, 0.0) * max(n - 1, 0) / max(n, 1)) if g < 1.0 else math.inf


def _m2_bound(g32: float, sums: _Sums, parts: MergedParts) -> float:
    """Bound on ||M2_computed - M2||_F given the per-product float32 bound g32 (docs/method.md sec. 1):
    g Z2 (the Gram) + 2 e (off + e / n) + e^2 / n with e = g sqrt(n Z2) + the parts' column-sum errors (the
    column sums in s s^T / n) + the parts' own bounds and mean-error terms + the final float64 step, with g =
    g32 plus the float64 additions of the blocks (at most 2n + 4 per entry, any order)."""
    n = sums.n
    g = g32 + gamma(2 * n + 4, U64) * (1.0 + g32)
    if not g < 1.0:
        return math.inf
    off = sums.off * sums.rho
    around = sums.rho * (sums.trace_m2 + n * off * off) / (1.0 - g)  # >= sum_i ||x_i - c||^2, exact
    z2 = around if sums.z2 is None else sums.z2 / (1.0 - g)  # Z2 of the blocks, each at its own shift
    own = g * math.sqrt(n * z2)
    e = own + parts.weight
    bound = g * z2 + 2.0 * e * (off + e / n) + e * e / n + 2.0 * parts.near + parts.error + parts.square
    bound += 2.0 * gamma(3, U64) * (1.0 + g) ** 2 * max(z2, around)
    return bound * (1.0 + gamma(16, U64))  # the float64 evaluation of this expression


def max_block_rows(width: int, *, block_bytes: int, min_rows: int, per_lead: int = 1, itemsize: int = 4) -> int:
    """The most rows one GEMM block of the accumulator holds: ``step`` leading indices of `per_lead` rows each,
    ``step = max(1, ceil(min_rows / per_lead), block_bytes // (itemsize per_lead (width + 1)))`` (a batch
    shorter than that gives shorter blocks, whose bound is smaller)."""
    step = max(1, -(-min_rows // per_lead), block_bytes // (itemsize * per_lead * (width + 1)))
    return step * per_lead


@dataclass(frozen=True)
class KCertificate:
    """k from the computed eigenvalues and the range of k over every covariance within eps of them.

    `certified`: the range is the single value k, so the exact covariance has this k. Otherwise the exact k is
    somewhere in k_low..k_high (what to show the user)."""

    k: int
    k_low: int
    k_high: int
    eps: float

    @property
    def certified(self) -> bool:
        return self.k_low == self.k == self.k_high


def certify_k(eigs: np.ndarray, eps: float, delta: float = DEFAULT_DELTA, trace: float | None = None) -> KCertificate:
    """The range of k = intrinsic_dimension over every symmetric PSD matrix within Frobenius distance `eps` of the
    computed covariance (docs/method.md sec. 1): eigenvalue i moves by at most eps (Weyl), the top-j sum by at
    most sqrt(j) eps (Hoffman-Wielandt) and the trace by at most eps.

    eigs: the computed covariance's eigenvalues (clipped at 0 or not); trace: its trace, when known (default: the
    sum of `eigs` clipped at 0; pass the trace when eigenvalues below 0 were clipped, for a strict bound).
    """
    values = np.sort(np.clip(np.asarray(eigs, dtype=np.float64), 0.0, None))[::-1]
    k = intrinsic_dimension(values, delta)
    d = values.shape[0]
    if d == 0:
        return KCertificate(0, 0, 0, eps)
    total = float(values.sum()) if trace is None else float(trace)
    j = np.arange(1, d + 1, dtype=np.float64)
    top = np.cumsum(values)
    highest = top + np.sqrt(j) * eps
    lowest = np.maximum(top - np.sqrt(j) * eps, np.cumsum(np.clip(values - eps, 0.0, None)))
    share = delta * (1.0 - SHARE_RTOL)
    total_low, total_high = max(total - eps, 0.0), total + eps
    # Smallest k possible: a total of 0 gives k = 0; else the first j whose sum may reach delta of the total.
    k_low = 0 if total_low <= 0.0 else _first(highest >= share * total_low, d)
    # Largest k possible: the first j whose sum surely reaches delta of any possible total (j = d always does).
    k_high = 0 if total_high <= 0.0 else _first(lowest >= share * total_high, d)
    return KCertificate(k, min(k_low, k), max(k_high, k), eps)


def _first(reached: np.ndarray, d: int) -> int:
    """1 + the index of the first True, or d when none."""
    return int(np.argmax(reached)) + 1 if bool(reached.any()) else d


class RoundingTrack:
    """What a float32 accumulator records for its bound (docs/method.md sec. 1), a few scalars per block: the
    most rows one block summed, the float64 sum of the blocks' Gram traces (each at its block's shift), the
    path length of the shift's moves, and the parts merged in."""

    def __init__(self) -> None:
        self.block_rows = 0
        self.z2 = 0.0
        self.moved = 0.0
        self.parts = MergedParts()

    def block(self, rows: int, trace: float) -> None:
        """One float32 block's Gram added (`trace` negative when a block is taken back out)."""
        self.block_rows = max(self.block_rows, rows)
        self.z2 += trace

    def merged(self, m: int, eps: float | None, distance: float) -> None:
        """A part of m samples whose covariance bound is `eps` (None: a float64 part, counted as exact) merged
        in, its mean at `distance` from the shift the merge moved to."""
        if not eps or m < 2:
            return
        r = mean_error(eps, m)
        p = self.parts
        self.parts = MergedParts(
            p.error + eps * (m - 1), p.weight + m * r, p.near + m * r * (distance - self.moved), p.square + m * r * r
        )

    def bound(self, n: int, width: int, trace_m2: float, offset: float) -> Float32Bound | None:
        """The bound at the end (offset: ||mean - final shift||), or None below two samples."""
        if n < 2:
            return None
        return float32_error_bound(
            n, width, max(self.block_rows, 1), trace_m2, offset + self.moved, z2=self.z2, merged=self.parts
        )
