"""Linear CKA from streamed float64 sums (docs/method.md, "Representation similarity (CKA)").

CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) (Kornblith et al. 2019) for the samples X (n x d1)
and Y (n x d2) of the same inputs, Xc and Yc centred. The debiased form replaces each ||.||_F^2 by the unbiased
HSIC estimator of Song et al. (2012). With K = X X^T, L = Y Y^T and K~, L~ their copies with a zero diagonal:

    n (n - 3) HSIC_1 = tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n - 1)(n - 2)) - 2 / (n - 2) 1^T K~ L~ 1

The estimator is translation invariant (it is a U-statistic of (x_i - x_r).(x_j - x_q) terms), so it may be
taken on centred samples. With a_i = ||x_i||^2, b_i = ||y_i||^2 and sum_i x_i = sum_i y_i = 0 the four terms are
tr(K~ L~) = ||X^T Y||_F^2 - sum a_i b_i, 1^T K~ 1 = -sum a_i, 1^T L~ 1 = -sum b_i and 1^T K~ L~ 1 = sum a_i b_i:

    n (n - 3) HSIC_1 = ||X^T Y||_F^2 - n / (n - 2) sum a_i b_i + (sum a_i)(sum b_i) / ((n - 1)(n - 2))

which is the feature-space form of google-research `representation_similarity`. Centring needs the final mean,
so every sum is kept around a fixed shift c (the first batch's mean) and re-expressed exactly around another
shift when two parts merge or the result is read (`Side.shifted`, `Cross.shifted`): besides n, sum u, U^T U and
U^T V (u = x - c), that takes sum a_i, sum a_i^2, sum a_i u_i per layer and sum a_i b_i, sum a_i v_i,
sum b_i u_i per pair, all of which re-express in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Side:
    """One layer's float64 sums of u = x - shift: n, sum u, U^T U, sum a, sum a^2, sum a u (a = ||u||^2)."""

    n: int
    shift: np.ndarray
    total: np.ndarray
    gram: np.ndarray
    sq: float
    sq2: float
    sq_x: np.ndarray

    @staticmethod
    def empty(shift: np.ndarray) -> Side:
        """No samples yet, summed around `shift`."""
        d = shift.shape[0]
        zeros = np.zeros(d)
        return Side(0, np.asarray(shift, dtype=np.float64), zeros, np.zeros((d, d)), 0.0, 0.0, zeros.copy())

    def shifted(self, shift: np.ndarray) -> Side:
        """The same sums re-expressed around `shift` (u' = u + delta, delta = old shift - new shift)."""
        delta = self.shift - shift
        e = float(delta @ delta)
        t = float(delta @ self.total)
        g_delta = self.gram @ delta
        return Side(
            self.n,
            np.asarray(shift, dtype=np.float64).copy(),
            self.total + self.n * delta,
            self.gram + np.outer(self.total, delta) + np.outer(delta, self.total) + self.n * np.outer(delta, delta),
            self.sq + 2 * t + self.n * e,
            self.sq2
            + 4 * float(delta @ g_delta)
            + self.n * e * e
            + 4 * float(delta @ self.sq_x)
            + 2 * e * self.sq
            + 4 * e * t,
            self.sq_x + self.sq * delta + 2 * g_delta + 2 * t * delta + e * self.total + self.n * e * delta,
        )

    def centred(self) -> Side:
        """The sums around the mean (sum u = 0)."""
        return self.shifted(self.shift + self.total / self.n) if self.n else self


@dataclass(frozen=True)
class Cross:
    """A pair's float64 cross sums around its sides' shifts: U^T V, sum a b, sum a v, sum b u."""

    xy: np.ndarray
    sq_sq: float
    sqx_y: np.ndarray
    x_sqy: np.ndarray

    @staticmethod
    def empty(d1: int, d2: int) -> Cross:
        return Cross(np.zeros((d1, d2)), 0.0, np.zeros(d2), np.zeros(d1))

    def shifted(self, x: Side, y: Side, shift_x: np.ndarray, shift_y: np.ndarray) -> Cross:
        """The cross sums re-expressed around new shifts; `x` and `y` are the sides before their shift."""
        n = x.n
        dx, dy = x.shift - shift_x, y.shift - shift_y
        e, f = float(dx @ dx), float(dy @ dy)
        tx, ty = float(dx @ x.total), float(dy @ y.total)
        xy_dy = self.xy @ dy
        return Cross(
            self.xy + np.outer(x.total, dy) + np.outer(dx, y.total) + n * np.outer(dx, dy),
            self.sq_sq
            + 2 * float(dy @ self.sqx_y)
            + f * x.sq
            + 2 * float(dx @ self.x_sqy)
            + 4 * float(dx @ xy_dy)
            + 2 * f * tx
            + e * y.sq
            + 2 * e * ty
            + n * e * f,
            self.sqx_y + x.sq * dy + 2 * (self.xy.T @ dx) + 2 * tx * dy + e * y.total + n * e * dy,
            self.x_sqy + y.sq * dx + 2 * xy_dy + 2 * ty * dx + f * x.total + n * f * dx,
        )


@dataclass(frozen=True)
class ShiftedRows:
    """One batch of a layer as u = x - shift (float64) and a = ||u||^2 per row, shared by all its pairs."""

    u: np.ndarray
    a: np.ndarray


def add_rows(side: Side | None, x: np.ndarray) -> tuple[Side, ShiftedRows]:
    """The side with the (n, d) rows `x` added (the first batch's mean becomes the shift), and the shifted rows."""
    x = np.asarray(x, dtype=np.float64)
    if side is None:
        side = Side.empty(x.mean(axis=0) if len(x) else np.zeros(x.shape[1]))
    u = x - side.shift
    a = np.einsum("ij,ij->i", u, u)
    grown = Side(
        side.n + len(x),
        side.shift,
        side.total + u.sum(axis=0),
        side.gram + u.T @ u,
        side.sq + float(a.sum()),
        side.sq2 + float(a @ a),
        side.sq_x + a @ u,
    )
    return grown, ShiftedRows(u, a)


def add_cross(cross: Cross | None, x: ShiftedRows, y: ShiftedRows) -> Cross:
    """The pair's cross sums with one batch of both layers added (rows of the same inputs, same order)."""
    if cross is None:
        cross = Cross.empty(x.u.shape[1], y.u.shape[1])
    return Cross(
        cross.xy + x.u.T @ y.u,
        cross.sq_sq + float(x.a @ y.a),
        cross.sqx_y + x.a @ y.u,
        cross.x_sqy + y.a @ x.u,
    )


def merge_sides(mine: Side, other: Side) -> Side:
    """Both parts' sums, around `mine`'s shift (exact: the other part is re-expressed, then added)."""
    o = other.shifted(mine.shift)
    return Side(
        mine.n + o.n, mine.shift, mine.total + o.total, mine.gram + o.gram, mine.sq + o.sq, mine.sq2 + o.sq2,
        mine.sq_x + o.sq_x,
    )  # fmt: skip


def merge_cross(mine: Cross, x: Side, y: Side, other: Cross, other_x: Side, other_y: Side) -> Cross:
    """Both parts' cross sums around the shifts of `x` and `y` (this part's sides, before their merge)."""
    o = other.shifted(other_x, other_y, x.shift, y.shift)
    return Cross(mine.xy + o.xy, mine.sq_sq + o.sq_sq, mine.sqx_y + o.sqx_y, mine.x_sqy + o.x_sqy)


def self_cross(side: Side) -> Cross:
    """A layer paired with itself (the normalisation terms)."""
    return Cross(side.gram, side.sq2, side.sq_x, side.sq_x)


def _hsic(xy_frob2: float, sum_ab: float, sum_a: float, sum_b: float, n: int, debiased: bool) -> float:
    """||X^T Y||_F^2 of centred samples, or n (n - 3) times the unbiased HSIC (Song et al. 2012)."""
    if not debiased:
        return xy_frob2
    return xy_frob2 - n / (n - 2) * sum_ab + sum_a * sum_b / ((n - 1) * (n - 2))


def linear_cka(x: Side, y: Side, cross: Cross, debiased: bool = False) -> float | None:
    """Linear CKA of the pair, None when undefined (a constant layer; n < 4 for the debiased form).

    The debiased value can fall slightly outside [0, 1] (its HSIC estimates are unbiased, not positive).
    """
    n = x.n
    if n < (4 if debiased else 2) or y.n != n:
        return None
    xc, yc = x.centred(), y.centred()
    c = cross.shifted(x, y, xc.shift, yc.shift)
    top = _hsic(float(np.sum(c.xy * c.xy)), c.sq_sq, xc.sq, yc.sq, n, debiased)
    norm_x = _hsic(float(np.sum(xc.gram * xc.gram)), xc.sq2, xc.sq, xc.sq, n, debiased)
    norm_y = _hsic(float(np.sum(yc.gram * yc.gram)), yc.sq2, yc.sq, yc.sq, n, debiased)
    if not (norm_x > 0 and norm_y > 0):
        return None
    return top / math.sqrt(norm_x * norm_y)


def merge_parts(
    sides_x: Sequence[Side], sides_y: Sequence[Side], crosses: Sequence[Cross | None]
) -> tuple[Side, Side, Cross | None]:
    """A pair's sides and cross sums over several parts (in data order), around the first part's shifts.

    `crosses` holds None for a layer paired with itself (its cross is `self_cross` of the merged side).
    """
    x, y, cross = sides_x[0], sides_y[0], crosses[0]
    for ox, oy, oc in zip(sides_x[1:], sides_y[1:], crosses[1:], strict=True):
        if cross is not None and oc is not None:
            cross = merge_cross(cross, x, y, oc, ox, oy)
        x, y = merge_sides(x, ox), merge_sides(y, oy)
    return x, y, cross
