"""Reservoir invariance, and TwoNN / Levina-Bickel against scikit-dimension and an independent cKDTree route."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from satcli.core.neighbours import Reservoir, levina_bickel, sample_keys, splitmix64, twonn


def _stream(index: np.ndarray, rows: np.ndarray, batch: int, capacity: int) -> Reservoir:
    res = Reservoir.empty(capacity, rows.shape[1])
    for start in range(0, len(index), batch):
        res = res.add(sample_keys(index[start : start + batch]), rows[start : start + batch])
    return res


def test_splitmix64_known_values() -> None:
    # splitmix64 seeded with 0: the generator's first output is mix(0 + golden) = 0xE220A8397B1DCDAF.
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    assert len(set(splitmix64(np.arange(10000)).tolist())) == 10000


def test_reservoir_ignores_batching_order_and_shards() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(1000, 5))
    index = np.arange(1000)
    one = _stream(index, rows, 1000, 100)
    perm = rng.permutation(1000)
    shuffled = _stream(index[perm], rows[perm], 37, 100)
    shards = [_stream(index[a:b], rows[a:b], 64, 100) for a, b in ((0, 333), (333, 700), (700, 1000))]
    merged = shards[2].merge(shards[0]).merge(shards[1])
    # The expected kept set, computed directly: the 100 inputs with the smallest keys.
    expected = np.sort(np.argsort(splitmix64(index))[:100])
    for res in (one, shuffled, merged):
        assert res.seen == 1000
        np.testing.assert_array_equal(res.keys, one.keys)
        np.testing.assert_array_equal(res.rows, one.rows)
    kept = np.sort(np.flatnonzero(np.isin(splitmix64(index), one.keys)))
    np.testing.assert_array_equal(kept, expected)


def _kdtree_twonn(points: np.ndarray) -> float:
    r, _ = cKDTree(points).query(points, k=3)
    return len(points) / np.log(r[:, 2] / r[:, 1]).sum()


def _kdtree_mle(points: np.ndarray, k: int) -> float:
    t, _ = cKDTree(points).query(points, k=k + 1)
    t = t[:, 1:]
    local = (k - 1) / np.log(t[:, -1:] / t[:, :-1]).sum(axis=1)
    return 1.0 / np.mean(1.0 / local)


def _cube(n: int = 1500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(10, 3)))
    return rng.uniform(size=(n, 3)) @ basis.T + 4.0


def test_against_independent_kdtree_and_known_dimension() -> None:
    points = _cube()
    two, mle = twonn(points), levina_bickel(points, 20)
    assert two.id == pytest.approx(_kdtree_twonn(points), rel=1e-9)
    assert mle.id == pytest.approx(_kdtree_mle(points, 20), rel=1e-9)
    assert two.id == pytest.approx(3.0, abs=0.3)
    assert mle.id == pytest.approx(3.0, abs=0.3)
    assert (two.points, two.duplicates, mle.k, mle.points) == (1500, 0, 20, 1500)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_against_scikit_dimension() -> None:
    skdim = pytest.importorskip("skdim")
    points = np.random.default_rng(1).normal(size=(800, 6)) @ np.random.default_rng(2).normal(size=(6, 12))
    n = len(points)
    # skdim's ML TwoNN is the unbiased (N - 1) / sum log mu; docs/method.md follows N / sum log mu.
    ref = skdim.id.TwoNN(discard_fraction=0.0, method="mle").fit(points).dimension_
    assert twonn(points).id == pytest.approx(ref * n / (n - 1), rel=1e-9)
    ref = skdim.id.MLE(K=20).fit(points, comb="mle").dimension_
    assert levina_bickel(points, 20).id == pytest.approx(ref, rel=1e-9)


def test_duplicates_removed_and_counted() -> None:
    points = _cube(300)
    doubled = np.concatenate([points, points[:50]])
    two = twonn(doubled)
    assert (two.points, two.duplicates, two.reservoir) == (300, 50, 350)
    assert two.id == pytest.approx(twonn(points).id, rel=1e-12)
    assert levina_bickel(np.ones((10, 3))).id is None
