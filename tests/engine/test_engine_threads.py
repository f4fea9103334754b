"""BLAS thread limits of the scoring step: one thread for narrow layers, torch's count for wide ones."""

from __future__ import annotations

import numpy  # noqa: F401  (loads the BLAS whose threads these tests limit)
import torch
from threadpoolctl import threadpool_info

from satcli.engine.threads import PARALLEL_EIGEN_WIDTH, blas_threads, scoring_threads


def _blas_threads() -> set[int]:
    return {int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_narrow_layers_score_on_one_blas_thread() -> None:
    with scoring_threads(PARALLEL_EIGEN_WIDTH - 1):
        assert _blas_threads() == {1}


def test_wide_layers_score_on_torch_thread_count() -> None:
    most = max(_blas_threads())  # what the BLAS allows outside any limit (1 on a one-thread build)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with scoring_threads(PARALLEL_EIGEN_WIDTH):
            assert _blas_threads() == {min(2, most)}
            with blas_threads(1):
                assert _blas_threads() == {1}
    finally:
        torch.set_num_threads(before)
