"""Streamed linear CKA against the feature-space formula of Kornblith et al. (2019) on materialised samples."""

from __future__ import annotations

import numpy as np
import pytest
from cka_reference import reference_cka

from satcli.core.cka import (
    Cross,
    Side,
    add_cross,
    add_rows,
    linear_cka,
    merge_cross,
    merge_parts,
    merge_sides,
    self_cross,
)


def hsic_u(k: np.ndarray, m: np.ndarray) -> float:
    """n (n-3) times the unbiased HSIC of Song et al. (2012), straight from the n x n Gram matrices."""
    n = k.shape[0]
    k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    return float(
        np.trace(k @ m) + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ m @ one
    )


def streamed(x: np.ndarray, y: np.ndarray, splits: list[int]) -> tuple[Side, Side, Cross]:
    sx = sy = None
    cross = None
    for part_x, part_y in zip(np.split(x, splits), np.split(y, splits), strict=True):
        sx, rx = add_rows(sx, part_x)
        sy, ry = add_rows(sy, part_y)
        cross = add_cross(cross, rx, ry)
    assert sx is not None and sy is not None and cross is not None
    return sx, sy, cross


def _data(seed: int = 0, n: int = 300, offset: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)) @ rng.normal(size=(12, 12)) + offset
    y = np.tanh(x[:, :7] @ rng.normal(size=(7, 9))) + 0.3 * rng.normal(size=(n, 9)) - offset
    return x, y


@pytest.mark.parametrize("debiased", [False, True])
def test_streamed_matches_the_feature_space_formula(debiased: bool) -> None:
    x, y = _data()
    sx, sy, cross = streamed(x, y, [7, 100, 101, 250])
    got = linear_cka(sx, sy, cross, debiased)
    assert got == pytest.approx(reference_cka(x, y, debiased), rel=1e-8, abs=1e-10)


def test_feature_space_debiased_form_equals_the_u_statistic() -> None:
    # The derivation in core/cka.py: the feature-space form is Song et al.'s estimator on Gram matrices.
    x, y = _data(n=60, offset=1.0)  # a small offset: the n x n route cancels in float64 far from the origin
    k, m = x @ x.T, y @ y.T  # uncentred: the estimator is translation invariant
    expected = hsic_u(k, m) / np.sqrt(hsic_u(k, k) * hsic_u(m, m))
    sx, sy, cross = streamed(x, y, [20])
    assert linear_cka(sx, sy, cross, debiased=True) == pytest.approx(expected, rel=1e-8)


def test_invariances_and_range() -> None:
    x, y = _data(1)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(12, 12)))
    for other in (x @ q, 3.5 * x + 7.0):
        sx, so, cross = streamed(x, other, [50, 120])
        assert linear_cka(sx, so, cross) == pytest.approx(1.0, abs=1e-10)
        assert linear_cka(sx, so, cross, debiased=True) == pytest.approx(1.0, abs=1e-10)
    sx, sy, cross = streamed(x, y, [30])
    value = linear_cka(sx, sy, cross)
    assert value is not None and 0.0 <= value <= 1.0
    assert linear_cka(sx, sx, self_cross(sx)) == pytest.approx(1.0, abs=1e-12)


def test_merging_three_splits_equals_one_pass() -> None:
    x, y = _data(3)
    whole_x, whole_y, whole = streamed(x, y, [])
    parts = [streamed(x[a:b], y[a:b], [b - a - 5]) for a, b in ((0, 40), (40, 210), (210, 300))]
    mx, my, mc = parts[0]
    for ox, oy, oc in parts[1:]:
        mc = merge_cross(mc, mx, my, oc, ox, oy)
        mx, my = merge_sides(mx, ox), merge_sides(my, oy)
    for got, want in ((mx, whole_x), (my, whole_y)):
        want = want.shifted(got.shift)
        assert got.n == want.n
        for field in ("total", "gram", "sq", "sq2", "sq_x"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-12, atol=1e-9)
    for debiased in (False, True):
        a, b = linear_cka(mx, my, mc, debiased), linear_cka(whole_x, whole_y, whole, debiased)
        assert a == pytest.approx(b, rel=1e-12)


def test_undefined_cases() -> None:
    x = np.ones((10, 3))
    sx, sy, cross = streamed(x, _data(n=10)[1], [])
    assert linear_cka(sx, sy, cross) is None
    small_x, small_y = _data(n=3)
    sx, sy, cross = streamed(small_x, small_y, [])
    assert linear_cka(sx, sy, cross, debiased=True) is None
    assert linear_cka(sx, sy, cross) is not None


def test_merge_parts_of_three_splits_matches_numpy() -> None:
    x, y = _data(4)
    parts = [streamed(x[a:b], y[a:b], []) for a, b in ((0, 90), (90, 91), (91, 300))]
    mx, my, mc = merge_parts([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])
    assert mc is not None and mx.n == 300
    for debiased in (False, True):
        assert linear_cka(mx, my, mc, debiased) == pytest.approx(reference_cka(x, y, debiased), rel=1e-10)
    sx, _, none = merge_parts([p[0] for p in parts], [p[0] for p in parts], [None] * 3)
    assert none is None and linear_cka(sx, sx, self_cross(sx)) == pytest.approx(1.0, abs=1e-12)
