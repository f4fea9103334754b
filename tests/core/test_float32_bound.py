"""The float32 error bound and the k certificate (satcli/core/precision.py, docs/method.md sec. 1) against
independent references: exact rational arithmetic on a small case, numpy/scipy float64 on the same float32
activations elsewhere, and a diagonal case computed by hand."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.fft import dct
from scipy.linalg.blas import dsyrk

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.blocks import BLOCK_BYTES, MIN_BLOCK_ROWS
from satcli.core.precision import U32, U64, certify_k, float32_error_bound, gamma, max_block_rows
from satcli.core.spectral import eigenvalues, intrinsic_dimension


def _simulate(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 accumulation as the accumulator does it: shift c = the first block's mean rounded to float32,
    each block's y = fl32(x - c) and [y, 1]^T [y, 1] in float32, added to float64 sums. (c, m2, s / n)."""
    n, d = x.shape
    shift = x[:block].astype(np.float64).mean(axis=0).astype(np.float32)
    sums = np.zeros((d + 1, d + 1))
    ones = np.ones((block, d + 1), dtype=np.float32)
    for start in range(0, n, block):
        y = ones[: min(block, n - start)].copy()
        np.subtract(x[start : start + block], shift, out=y[:, :d])  # float32 - float32: one rounding
        sums += (y.T @ y).astype(np.float64)  # float32 GEMM
    col = sums[d, :d]
    return shift, sums[:d, :d] - np.outer(col, col) / n, col / n


def _reference_m2(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """float64 M2 around the same shift (x - c is exact in float64 for float32 x and c)."""
    z = x.astype(np.float64) - shift.astype(np.float64)
    s = z.sum(axis=0)
    return z.T @ z - np.outer(s, s) / len(z)


def _float64_slack(x: np.ndarray, shift: np.ndarray) -> float:
    """Bound on the float64 reference's own M2 error (Higham eq. 3.4 on its sums): 3 gamma_{n+3} Z2."""
    z2 = float(np.square(x.astype(np.float64) - shift.astype(np.float64)).sum())
    return 3 * gamma(len(x) + 3, U64) * z2


def _norm2(e: np.ndarray) -> float:
    return float(np.abs(np.linalg.eigvalsh(e)).max())


def _adversarial() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(11)
    n, d = 12_000, 24
    scales = np.geomspace(1e-4, 1e4, d)
    spreads = np.geomspace(1e-3, 1, d)
    drift = rng.normal(size=(n, d))
    drift[n // 2 :] += 2.0  # later blocks a distance from the shift: a large offset s / n
    third = np.full((n, d), 1.0 / 3.0) + rng.normal(size=(n, d)) * 1e-3  # every sum grows alike past block 1
    third[:256] -= 1.0 / 3.0
    return {
        "mean 1e4, spread 1": ((1e4 + rng.normal(size=(n, d))).astype(np.float32), 256),
        "mean 1e3, spreads 1e-3..1": ((1e3 + rng.normal(size=(n, d)) * spreads).astype(np.float32), 4096),
        "heavy tails (t, 1.2 dof)": (rng.standard_t(1.2, size=(n, d)).astype(np.float32) * 100, 256),
        "dynamic range 1e-4..1e4": ((rng.normal(size=(n, d)) * scales + 3 * scales).astype(np.float32), n),
        "drift by 2 sd": (drift.astype(np.float32), 1024),
        "all 1/3 from the shift": (third.astype(np.float32), n),
    }


@pytest.mark.parametrize("name", sorted(_adversarial()))
def test_the_bound_holds_on_adversarial_data(name: str) -> None:
    x, block = _adversarial()[name]
    n, d = x.shape
    shift, m2, offset = _simulate(x, block)
    error = m2 - _reference_m2(x, shift)
    bound = float32_error_bound(n, d, block, float(np.trace(m2)), offset)
    measured = max(_norm2(error), float(np.linalg.norm(error)), abs(float(np.trace(error))))
    assert 0 < measured / (n - 1) <= bound.eps + _float64_slack(x, shift) / (n - 1)


def test_the_bound_holds_against_exact_rational_arithmetic() -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_t(2.0, size=(700, 4)) * [1.0, 1e3, 1e-3, 7.0] + [3e4, -2.0, 0.5, 1e2]).astype(np.float32)
    shift, m2, offset = _simulate(x, 300)
    z = [[Fraction(float(v)) - Fraction(float(c)) for v, c in zip(row, shift, strict=True)] for row in x]
    s = [sum(col) for col in zip(*z, strict=True)]
    exact = np.array([[float(sum(r[j] * r[k] for r in z) - s[j] * s[k] / len(z)) for k in range(4)] for j in range(4)])
    bound = float32_error_bound(len(x), 4, 300, float(np.trace(m2)), offset)
    assert 0 < np.linalg.norm(m2 - exact) / (len(x) - 1) <= bound.eps


def test_the_bound_holds_for_the_accumulator_itself() -> None:
    rng = np.random.default_rng(4)
    d, n = 96, 9000
    x = (rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) * np.geomspace(1, 1e-3, d)) + 50.0).astype(np.float32)
    acc = CovarianceAccumulator(d, precision="float32")
    for start in range(0, n, 1000):
        acc.update(torch.from_numpy(x[start : start + 1000]))
    m = acc.moments
    shift = x[:1000].astype(np.float64).mean(axis=0).astype(np.float32)  # the first batch's mean, float32
    block = max_block_rows(d, block_bytes=BLOCK_BYTES, min_rows=MIN_BLOCK_ROWS)
    bound = float32_error_bound(n, d, block, float(m.m2.trace()), m.mean.numpy() - shift)
    error = m.m2.numpy() - _reference_m2(x, shift)
    assert 0 < np.linalg.norm(error) / (n - 1) <= bound.eps + _float64_slack(x, shift) / (n - 1)


def test_whenever_k_is_certified_it_is_the_reference_k() -> None:
    rng = np.random.default_rng(8)
    certified = flips = 0
    for trial in range(120):
        d = int(rng.integers(4, 24))
        x = rng.normal(size=(3000, d)) * np.geomspace(1, 10.0 ** -rng.uniform(0.5, 3), d)
        x = (x @ np.linalg.qr(rng.normal(size=(d, d)))[0] + rng.normal(size=d) * 30).astype(np.float32)
        shift, m2, offset = _simulate(x, 3000)  # one long block: the largest float32 error
        cov, reference = m2 / 2999, _reference_m2(x, shift) / 2999
        eps = float32_error_bound(3000, d, 3000, float(np.trace(m2)), offset).eps
        eigs, ref_eigs = eigenvalues(cov), eigenvalues(reference)
        # delta at or next to a reference share, so that some k do flip
        j = int(rng.integers(1, d))
        share = float(np.cumsum(ref_eigs)[j - 1] / ref_eigs.sum())
        for delta in (share, share * (1 + 1e-6), share * (1 - 1e-6), share * (1 + 3e-4), 0.99):
            if not 0 < delta <= 1:
                continue
            result = certify_k(eigs, eps, delta, trace=float(np.trace(cov)))
            truth = intrinsic_dimension(ref_eigs, delta)
            assert result.k_low <= truth <= result.k_high, (trial, delta)
            assert result.k_low <= result.k <= result.k_high
            if result.certified:
                certified += 1
                assert result.k == truth, (trial, delta)
            flips += result.k != truth
    print(f"{certified} certified, {flips} k differ from the reference")
    assert certified > 50 and flips > 0  # both sides of the certificate were exercised


def test_a_diagonal_covariance_by_hand() -> None:
    # Rows +-1 e_1, +-2 e_2, +-3 e_3: mean 0 (= the shift), M2 = diag(2, 8, 18), n = 6, cov = diag(0.4, 1.6, 3.6).
    x = np.array([[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 3], [0, 0, -3]], dtype=np.float32)
    _, m2, offset = _simulate(x, 256)
    assert np.array_equal(m2, np.diag([2.0, 8.0, 18.0])) and not offset.any()
    bound = float32_error_bound(6, 3, 256, 28.0, offset)
    # Leading term: gamma_{b+2} Z2 / (n - 1) = 258 u * 28 / 5, the rest is O(u^2) or float64.
    assert bound.eps == pytest.approx(258 * U32 * 28 / 5, rel=1e-4)
    eps = bound.eps  # 8.61e-05
    # delta 0.9: shares 3.6/5.6 = 0.643 and 5.2/5.6 = 0.929, gaps far above 2 eps: k = 2 for sure.
    assert (certify_k([3.6, 1.6, 0.4], eps, 0.9).k_low, certify_k([3.6, 1.6, 0.4], eps, 0.9).k_high) == (2, 2)
    # delta 1e-6 below 5.2/5.6: the top-2 sum 5.2 exceeds delta * 5.6 by 5.6e-6 < sqrt(2) eps: k may be 3.
    result = certify_k([3.6, 1.6, 0.4], eps, 5.2 / 5.6 - 1e-6)
    assert (result.k, result.k_low, result.k_high, result.certified) == (2, 2, 3, False)
    # With a 10x larger eps the first share 0.643 is still far from delta: k_low stays 2.
    assert certify_k([3.6, 1.6, 0.4], 10 * eps, 5.2 / 5.6 - 1e-6).k_low == 2
    # A dead layer: total 0 and eps 0 is certified k = 0; any eps > 0 allows k 0..d.
    assert certify_k(np.zeros(3), 0.0).certified and certify_k(np.zeros(3), 0.0).k == 0
    assert (certify_k(np.zeros(3), 1e-9).k_low, certify_k(np.zeros(3), 1e-9).k_high) == (0, 3)


def test_the_probabilistic_bound_is_labelled_and_tighter_for_long_blocks() -> None:
    short = float32_error_bound(10_000, 16, 256, 1.0, 0.0)
    long = float32_error_bound(10_000, 16, 15_420, 1.0, 0.0)
    assert short.eps_probable < short.eps and long.eps_probable < long.eps / 10
    # Higham & Mary's gamma~: lambda from 2 N exp(-lambda^2 (1-u)^2 / 2) = 1e-6, N = n (d + 1)^2 terms.
    lam = math.sqrt(2 * math.log(2 * 10_000 * 17**2 / 1e-6)) / (1 - U32)
    assert long.eps_probable == pytest.approx(math.expm1(lam * math.sqrt(15_422) * U32) / 9_999, rel=1e-3)
    assert short.failure_probability == 1e-6


def _wide_case(d: int, n: int, batch: int = 4096) -> dict[str, float]:
    """Rows X = Z diag(s) Q + mu (s a power law, Q the orthonormal DCT), fed in batches to the float32
    accumulator and to a scipy float64 reference around the same shift; their errors and k."""
    rng = np.random.default_rng(d)
    scales = np.arange(1, d + 1, dtype=np.float64) ** -1.0
    mu = rng.normal(size=d) * 3 * scales[0]
    acc = CovarianceAccumulator(d, precision="float32")
    shift = gram = None
    for start in range(0, n, batch):
        x = (dct(rng.normal(size=(min(batch, n - start), d)) * scales, norm="ortho", axis=1) + mu).astype(np.float32)
        acc.update(torch.from_numpy(x))
        if shift is None:
            shift = x.astype(np.float64).mean(axis=0).astype(np.float32).astype(np.float64)
            gram = np.zeros((d + 1, d + 1), order="F")
        z = np.ones((x.shape[0], d + 1))
        np.subtract(x, shift, out=z[:, :d])
        gram = dsyrk(1.0, z, beta=1.0, c=gram, trans=1, lower=1, overwrite_c=1)
    col = gram[d, :d]
    full = np.tril(gram[:d, :d]) + np.tril(gram[:d, :d], -1).T
    reference = (full - np.outer(col, col) / n) / (n - 1)
    m = acc.moments
    cov = m.m2.numpy() / (n - 1)
    block = max_block_rows(d, block_bytes=BLOCK_BYTES, min_rows=MIN_BLOCK_ROWS)
    bound = float32_error_bound(n, d, block, float(m.m2.trace()), m.mean.numpy() - shift)
    eigs, ref_eigs = eigenvalues(cov), eigenvalues(reference)
    cert = certify_k(eigs, bound.eps, trace=float(np.trace(cov)))
    probable = certify_k(eigs, bound.eps_probable, trace=float(np.trace(cov)))
    return {
        "measured": _norm2(cov - reference),
        "eps": bound.eps,
        "eps_probable": bound.eps_probable,
        "slack": _float64_slack_scalar(n, float(np.trace(full))) / (n - 1),
        "k": cert.k,
        "k_reference": intrinsic_dimension(ref_eigs),
        "k_low": cert.k_low,
        "k_high": cert.k_high,
        "certified": cert.certified,
        "probable_range": (probable.k_low, probable.k_high),
    }


def _float64_slack_scalar(n: int, z2: float) -> float:
    return 3 * gamma(n + 3, U64) * z2


def _check_wide(result: dict[str, float]) -> None:
    print(result)  # the figures docs/method.md quotes (pytest -s)
    assert 0 < result["measured"] <= result["eps"] + result["slack"]
    assert result["k_low"] <= result["k_reference"] <= result["k_high"]
    if result["certified"]:
        assert result["k"] == result["k_reference"]


def test_a_768_wide_layer_over_20000_rows() -> None:
    _check_wide(_wide_case(768, 20_000))


@pytest.mark.slow
def test_a_3072_wide_layer_over_100000_tokens() -> None:
    start = time.perf_counter()
    _check_wide(_wide_case(3072, 100_000))
    print(f"{time.perf_counter() - start:.0f} s")
