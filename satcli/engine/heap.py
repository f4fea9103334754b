"""Freed heap memory handed back to the system between batches (glibc's `malloc_trim`).

A forward pass and the accumulators' float64 blocks free many medium-sized buffers from several threads.
glibc keeps such memory in its arenas, and how much of it stays resident depends on thread timing: the same
GPT-2-shaped run (benchmarks/transformer_scale.py, 512 texts) peaked anywhere from 3.6 to 4.4 GB over runs,
and at 3.25-3.27 GB with a trim after every batch (16 trims, 0.7 s in all). Trims are spaced at least
`interval` seconds apart, so runs of many small batches pay at most a few per cent. Elsewhere (no glibc) this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Call after each batch: trims the heap when `interval` seconds have passed since the last trim."""

    def __init__(self, interval: float = 1.0, trim: Callable[[int], int] | None = None) -> None:
        self.interval = interval
        self._trim = _malloc_trim() if trim is None else trim
        self._last = time.monotonic()
        self.trims = 0

    def __call__(self) -> None:
        now = time.monotonic()
        if self._trim is None or now - self._last < self.interval:
            return
        self._trim(0)
        self.trims += 1
        self._last = time.monotonic()
