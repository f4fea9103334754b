"""What a float32 accumulator records for its error bound (docs/method.md sec. 1) against a numpy simulation
of its blocks, and the bound it gives against numpy float64 on the same float32 rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.blocks import BLOCK_BYTES, MIN_BLOCK_ROWS
from satcli.core.precision import float32_error_bound


def _rows(n: int, d: int, drift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.geomspace(1, 1e-2, d) + 5 + np.linspace(0, drift, n)[:, None]
    return x.astype(np.float32)


def _fed(x: np.ndarray, batch: int) -> CovarianceAccumulator:
    acc = CovarianceAccumulator(x.shape[1], precision="float32")
    for start in range(0, len(x), batch):
        acc.update(torch.from_numpy(x[start : start + batch]))
    return acc


def test_block_rows_and_trace_sum_match_a_numpy_simulation_of_the_wide_path() -> None:
    d, n, batch = 96, 5000, 1000  # d * d > batch: block by block straight into the sums
    x = _rows(n, d, 0.0, 1)
    acc = _fed(x, batch)
    assert acc.n == n  # flushes the last grouped batch
    step = max(MIN_BLOCK_ROWS, BLOCK_BYTES // (4 * (d + 1)))
    shift = x[:batch].astype(np.float64).mean(axis=0).astype(np.float32)  # the first batch's mean, float32
    z2 = 0.0
    for start in range(0, n, batch):
        for first in range(start, start + batch, step):
            y = x[first : min(first + step, start + batch)] - shift  # float32 rows, as the block holds them
            z2 += float(np.square(y.astype(np.float64)).sum())
    track = acc._track
    assert track.block_rows == min(step, batch) and track.moved == 0.0
    assert track.z2 == pytest.approx(z2, rel=1e-5)  # float32 Gram diagonals against exact float64 squares


def test_grouped_small_batches_count_as_one_block() -> None:
    x = _rows(3000, 8, 0.0, 2)
    acc = _fed(x, 100)  # grouped until flushed: one batch, one block of every row
    assert acc.n == 3000  # flushes the grouped batches
    assert acc._track.block_rows == 3000
    z = x.astype(np.float64) - x[:3000].astype(np.float64).mean(axis=0).astype(np.float32)
    assert acc._track.z2 == pytest.approx(float(np.square(z).sum()), rel=1e-5)


def test_a_drifting_stream_records_its_shift_path_and_keeps_the_bound() -> None:
    x = _rows(6000, 96, 40.0, 3)
    acc = _fed(x, 500)
    assert acc._track.moved > 0  # the shift moved: the bound takes the traces and the path
    bound = acc.rounding_bound()
    cov = acc.compute()[2].numpy()
    error = float(np.linalg.norm(cov - np.cov(x.astype(np.float64), rowvar=False)))
    assert 0 < error <= bound.eps


def test_z2_gives_the_same_bound_as_the_trace_when_nothing_moved() -> None:
    x = _rows(4000, 16, 0.0, 4)
    acc = _fed(x, 4000)
    m = acc.moments
    shift = acc._shift.numpy()
    by_trace = float32_error_bound(4000, 16, 4000, float(m.m2.trace()), m.mean.numpy() - shift)
    by_z2 = float32_error_bound(4000, 16, 4000, 0.0, m.mean.numpy() - shift, z2=acc._track.z2)
    assert by_z2.eps == pytest.approx(by_trace.eps, rel=1e-4)


def test_merged_halves_keep_a_bound_above_the_measured_error_and_float64_has_none() -> None:
    x = _rows(6000, 96, 20.0, 5)
    first, second = _fed(x[:3000], 500), _fed(x[3000:], 500)
    first.merge(second)
    cov = first.compute()[2].numpy()
    error = float(np.linalg.norm(cov - np.cov(x.astype(np.float64), rowvar=False)))
    assert 0 < error <= first.rounding_bound().eps
    assert CovarianceAccumulator(4).rounding_bound() is None


def test_the_saturation_merge_of_float32_parts_keeps_a_bound() -> None:
    from satcli.analyses.saturation import SaturationAnalysis, SaturationOptions
    from satcli.taps.layers import Layer

    x = _rows(6000, 96, 10.0, 6)
    layer = Layer("fc", "Linear", "dense", 96, 0)
    parts = []
    for half in (x[:3000], x[3000:]):
        part = SaturationAnalysis(SaturationOptions("float32"))
        for start in range(0, 3000, 500):
            part.update(layer, torch.from_numpy(half[start : start + 500]), None)
        parts.append(part.state())
    whole = SaturationAnalysis(SaturationOptions("float32"))
    for state in parts:
        whole.merge(state)
    stats = whole.state()["fc"]
    error = float(np.linalg.norm(stats.m2 / 5999 - np.cov(x.astype(np.float64), rowvar=False)))
    assert 0 < error <= stats.rounding and stats.rounding >= max(p["fc"].rounding for p in parts) / 2
