"""Blocks of shifted rows and their Gram matrices: the arithmetic under CovarianceAccumulator (accumulator.py).

A batch is cut into blocks of about BLOCK_BYTES, each written once into a per-thread scratch buffer (shifted,
with a column of ones) and its Gram added by GEMM, only the lower triangle for wide layers; `mirror` makes the
sums symmetric in place at the end. float32 blocks form their Gram in float32 first (docs/method.md sec. 1).
"""

from __future__ import annotations

import math
import threading

import torch

# Size of the block of centered rows one GEMM call consumes (kept in cache, reused across batches).
BLOCK_BYTES = 1 << 20

# Below this many columns one full Gram GEMM is as fast as the lower triangle in panels.
TRIANGLE_MIN_WIDTH = 32

# A GEMM block has at least this many rows (fewer only when the batch has fewer): shorter GEMMs of wide
# layers run far below the BLAS's speed.
MIN_BLOCK_ROWS = 256

# Rows per panel when the lower triangle is mirrored in place and when the sums are compacted into M2.
PANEL_ROWS = 256


class Blocks:
    """A batch's blocks of shifted rows: `step` leading indices each, filled into one reused buffer whose
    last column is ones, and each block's Gram added to a float64 matrix."""

    def __init__(self, step: int, channels_first: bool, buffer: torch.Tensor, dtype: torch.dtype, lower: bool) -> None:
        self.step = step
        self.channels_first = channels_first
        self.buffer = buffer
        self.dtype = dtype
        self.lower = lower
        self._block: torch.Tensor | None = None  # float32 blocks' own Gram, added to the float64 sums

    def fill(self, part: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Y = [part - shift, 1] as a (rows, d+1) matrix (a transposed view of the buffer when channels first)."""
        d = part.shape[-1]
        k = part.shape[:-1].numel()
        shift = shift.to(self.dtype)
        if self.channels_first:
            n = part.shape[0]
            source = part.movedim(-1, 1).reshape(n, d, -1)
            torch.sub(source, shift.view(1, d, 1), out=self.buffer[:d, :k].view(d, n, -1).movedim(0, 1))
            return self.buffer[:, :k].T
        torch.sub(part, shift, out=self.buffer[:k, :d].view(part.shape))
        return self.buffer[:k]

    def add(self, gram: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> None:
        """gram += alpha Y^T Y (lower triangle only when wide); float32 blocks' Gram in float32 first."""
        if self.dtype == torch.float64:
            add_gram(gram, y, self.lower, alpha)
            return
        if self._block is None:
            self._block = scratch(gram.numel(), self.dtype, gram.device, "gram").view(gram.shape)
        add_gram(self._block.zero_(), y, self.lower)
        gram.add_(self._block, alpha=alpha)

    def trace(self) -> float:
        """The float64 trace of the last float32 block's Gram (its rows' sum of ||x - c||^2, rounded)."""
        assert self._block is not None
        return float(self._block.diagonal().sum(dtype=torch.float64))


_SCRATCH = threading.local()


def scratch(size: int, dtype: torch.dtype, device: torch.device, slot: str = "rows") -> torch.Tensor:
    """A 1-D scratch of at least `size` elements, one per thread, slot, dtype and device, reused by every
    accumulator: layers are updated one after another, so a run holds one block buffer (6 MiB for a 3,072-wide
    layer), not one per layer (170 MiB for a GPT-2-small shape's 48 layers), and one float32 block Gram ("gram"
    slot), not one freshly mapped (and page-faulted) per layer and batch."""
    pool = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = {}
    key = (slot, dtype, device)
    held = pool.get(key)
    if held is None or held.numel() < size:
        held = pool[key] = torch.empty(size, dtype=dtype, device=device)
    return held[:size]


def add_gram(gram: torch.Tensor, y: torch.Tensor, lower: bool, alpha: float = 1.0) -> None:
    """gram += alpha y^T y; with `lower`, only its lower triangle, in row panels (each one GEMM)."""
    if not lower:
        gram.addmm_(y.T, y, alpha=alpha)
        return
    width = y.shape[1]
    panel = min(256, max(16, 1 << max(0, round(math.log2(width / 8)))))
    for top in range(0, width, panel):
        bottom = min(width, top + panel)
        gram[top:bottom, :bottom].addmm_(y[:, top:bottom].T, y[:, :bottom], alpha=alpha)


def float64_sums(x: torch.Tensor, per_input: bool = False) -> torch.Tensor:
    """float64 sums of a (B, ..., d) tensor over every sample dim (with `per_input`, over all but B: one row
    per input), a few inputs at a time. A float64 reduction converts its whole input first, and a
    batch-sized float64 copy is freshly mapped memory whose page faults cost ten times the sum (1.2 ms in
    blocks, 16 ms at once for a 256 x 256 x 8 x 8 batch)."""
    dims = tuple(range(1 if per_input else 0, x.ndim - 1))
    if not dims:
        return x.to(torch.float64, copy=True)  # (B, d) per input: each row is its own sum
    step = max(1, BLOCK_BYTES // (8 * x[0].numel()))
    parts = [x[start : start + step].sum(dim=dims, dtype=torch.float64) for start in range(0, x.shape[0], step)]
    if per_input:
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)


def mirror(square: torch.Tensor) -> None:
    """Make `square` symmetric in place from its lower triangle (its upper one may be stale), in row panels:
    each panel's upper part is copied from the transposed lower column panel, no d x d temporary."""
    d = square.shape[0]
    for top in range(0, d, PANEL_ROWS):
        bottom = min(d, top + PANEL_ROWS)
        block = square[top:bottom, top:bottom]
        block.copy_(block.tril() + block.tril(-1).T)
        square[top:bottom, bottom:].copy_(square[bottom:, top:bottom].T)
