"""BLAS threads for the scoring step (eigenvalues, class spectra), where numpy's OpenBLAS runs.

Measured on 2 cores: for small matrices numpy's OpenBLAS with 2 threads next to torch's OpenMP pool (whose
threads spin after every parallel region) took up to 40x the time of 1 thread, and under load 2x for a
1024 x 1024 eigvalsh; on a quiet machine 2 threads take 0.77x the wall time of one at 1024 and 0.64x at
2048 (benchmarks/README.md). So one thread, except for wide layers, which get torch's thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# From this width on, the d x d eigendecompositions run on torch's intra-op thread count.
PARALLEL_EIGEN_WIDTH = 1024


@contextlib.contextmanager
def scoring_threads(widest: int) -> Iterator[None]:
    """BLAS threads for scoring layers up to `widest` columns: one, or torch's count for wide layers."""
    import torch

    with blas_threads(torch.get_num_threads() if widest >= PARALLEL_EIGEN_WIDTH else 1):
        yield


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """numpy's BLAS limited to `count` threads for the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency; stay usable without it
        yield
        return
    with threadpool_limits(limits=max(1, count), user_api="blas"):
        yield
