"""One BLAS thread for the scoring step (eigenvalues, class spectra), where numpy's OpenBLAS runs.

Measured on 2 cores: numpy's OpenBLAS with 2 threads next to torch's OpenMP pool (whose threads spin after
every parallel region) takes 2x the wall time and 4x the CPU of 1 thread for a 1024 x 1024 eigvalsh, and
up to 40x for small ones; see benchmarks/README.md. torch's own LAPACK is slower still at that size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """numpy's BLAS limited to one thread for the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency; stay usable without it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
