"""Nearest-neighbour intrinsic dimension on a hash-chosen reservoir (docs/method.md, "Nearest-neighbour
intrinsic dimension").

Both estimators need raw samples, not sums. A layer keeps at most R samples: those whose key (a fixed 64-bit
mix, splitmix64, of the input's global index) is smallest. The key depends on the input only, so the same
samples are kept whatever the batch size, the order, the ranks or the shards, and merging two reservoirs
keeps the R smallest keys of their union, exactly what one pass would have kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESERVOIR = 2000
DEFAULT_K = 20
_BLOCK = 1024  # rows of the distance matrix computed at once

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's output function (Steele, Lea & Flood 2014) of each value: a bijection of uint64."""
    z = np.asarray(values).astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def sample_keys(index: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
    """The key of each sample: its input's global index mixed, and, for inputs giving several samples
    (positions, tokens), mixed again with the sample's position among its input's samples."""
    keys = splitmix64(index)
    if position is None:
        return keys
    return splitmix64(keys ^ np.asarray(position).astype(np.uint64))


@dataclass(frozen=True)
class Reservoir:
    """At most `capacity` samples, those with the smallest keys, sorted by key; `seen` counts all. Rows keep the
    activations' own float32 / float64 values (exact; the estimates compute in float64, see `distinct`)."""

    capacity: int
    keys: np.ndarray
    rows: np.ndarray
    seen: int = 0

    @staticmethod
    def empty(capacity: int, width: int, dtype: np.dtype | type = np.float64) -> Reservoir:
        return Reservoir(capacity, np.zeros(0, dtype=np.uint64), np.zeros((0, width), dtype=dtype), 0)

    def add(self, keys: np.ndarray, rows: np.ndarray) -> Reservoir:
        """This reservoir with the (n,) keyed (n, d) rows offered (only those among the smallest keys are kept)."""
        keys = np.asarray(keys, dtype=np.uint64)
        seen = self.seen + len(keys)
        if len(self.keys) >= self.capacity:  # only keys below the largest kept one can enter
            entering = keys < self.keys[-1]
            keys, rows = keys[entering], rows[entering]
        if len(keys) == 0:
            return Reservoir(self.capacity, self.keys, self.rows, seen)
        all_keys = np.concatenate([self.keys, keys])
        all_rows = np.concatenate([self.rows, np.asarray(rows)])  # float32 with float64 (a merge): float64
        order = np.argsort(all_keys, kind="stable")[: self.capacity]
        return Reservoir(self.capacity, all_keys[order], all_rows[order], seen)

    def merge(self, other: Reservoir) -> Reservoir:
        """The reservoir of both parts' samples (the smallest keys of the union)."""
        merged = self.add(other.keys, other.rows)
        return Reservoir(self.capacity, merged.keys, merged.rows, self.seen + other.seen)


@dataclass(frozen=True)
class TwoNN:
    """TwoNN estimate: `id`, distinct `points` used, `duplicates` removed, reservoir size before that."""

    id: float | None
    points: int
    duplicates: int
    reservoir: int

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "points": self.points, "duplicates": self.duplicates, "reservoir": self.reservoir}


@dataclass(frozen=True)
class LevinaBickel:
    """Levina-Bickel MLE: `id` with `k` neighbours over `points` distinct points of a `reservoir`."""

    id: float | None
    k: int
    points: int
    duplicates: int
    reservoir: int

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "k": self.k, "points": self.points, "reservoir": self.reservoir}


def distinct(points: np.ndarray) -> tuple[np.ndarray, int]:
    """The distinct rows of `points` (float64) and how many duplicates were removed."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return points, 0
    unique = np.unique(points, axis=0)
    return unique, len(points) - len(unique)


def nearest_distances(points: np.ndarray, k: int) -> np.ndarray:
    """(n, k) Euclidean distances from each point to its k nearest other points, ascending (float64).

    Brute force by blocks on centred points: |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, clipped at 0.
    """
    x = points - points.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    out = np.empty((len(x), k))
    for start in range(0, len(x), _BLOCK):
        stop = min(start + _BLOCK, len(x))
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own neighbour
        nearest = np.partition(d2, k - 1, axis=1)[:, :k]
        out[start:stop] = np.sqrt(np.maximum(np.sort(nearest, axis=1), 0.0))
    return out


def twonn(points: np.ndarray) -> TwoNN:
    """TwoNN maximum likelihood d = N' / sum_i log(r2_i / r1_i) over the distinct points (Facco et al. 2017)."""
    unique, duplicates = distinct(points)
    n = len(unique)
    if n < 3:
        return TwoNN(None, n, duplicates, len(points))
    r = nearest_distances(unique, 2)
    logs = np.log(r[:, 1] / r[:, 0])
    total = float(logs.sum())
    return TwoNN(n / total if total > 0 else None, n, duplicates, len(points))


def levina_bickel(points: np.ndarray, k: int = DEFAULT_K) -> LevinaBickel:
    """Levina & Bickel's MLE with k neighbours, local estimates averaged as inverses (MacKay & Ghahramani):
    m(x)^-1 = 1/(k-1) sum_{j<k} log(T_k(x) / T_j(x)); d = 1 / mean_x m(x)^-1."""
    unique, duplicates = distinct(points)
    n = len(unique)
    if k < 2 or n <= k:
        return LevinaBickel(None, k, n, duplicates, len(points))
    t = nearest_distances(unique, k)
    inverse = np.log(t[:, -1:] / t[:, :-1]).sum(axis=1) / (k - 1)
    mean = float(inverse.mean())
    return LevinaBickel(1.0 / mean if mean > 0 else None, k, n, duplicates, len(points))
