"""Exact streaming mean and covariance of one layer, torchmetrics-style (update / compute / reset / merge).

The maths of merging lives in pure functions on Moments (moments.py); this class wraps them with a fast
shifted-sums update for the hot path."""

from __future__ import annotations

import math

import torch

from satcli.core.moments import Moments, covariance, merge_moments

# Size of the block of centered rows one GEMM call consumes (kept in cache, reused across batches).
BLOCK_BYTES = 1 << 20

# Precision of the per-block Gram matrices: float64 (exact to rounding, the default) or float32 (2x less
# arithmetic and memory traffic; sums stay float64 and blocks are short, see docs/method.md sec. 1 for its error).
PRECISIONS = ("float64", "float32")

# Below this many columns one full Gram GEMM is as fast as the lower triangle in panels.
TRIANGLE_MIN_WIDTH = 32

# A GEMM block has at least this many rows (fewer only when the batch has fewer): shorter GEMMs of wide
# layers run far below the BLAS's speed.
MIN_BLOCK_ROWS = 256

# Wide layers' batches accumulate into one Gram matrix over this many rows before it is added to the sums.
RECENT_ROWS = 8192


class CovarianceAccumulator:
    """Streams batches of one layer into exact float64 moments on the activations' device.

    State: a shift ``c`` (the mean of the first batch, moved when the data drift away from it) and the
    float64 sums ``S = sum [x - c, 1]^T [x - c, 1]`` of size (d+1, d+1), which hold the shifted Gram
    matrix, the shifted column sums and n. Each block of rows costs one conversion pass (activation
    dtype to float64, subtracting ``c``, straight from any strided view; the channelwise view of a
    contiguous NCHW conv output is read in its own order into a transposed block) into a reused
    cache-sized buffer and one float64 GEMM. ``moments`` turns the sums into (n, mean, M2) with
    ``M2 = S_xx - s s^T / n``. With ``c`` within one standard deviation of the data's
    mean this loses at most a few ulps; every batch is checked and, if its mean lies further from ``c``
    than its spread, ``c`` is moved to it first (an exact update of ``S``), so accuracy holds for any data
    order. Merging two accumulators uses the Chan merge of ``merge_moments``.

    For wide layers only the lower triangle of ``S`` is computed (the rank-k update of BLAS ``syrk``, done
    as GEMMs on row panels): about half the multiply-adds of a full Gram; ``moments`` mirrors it. Their
    batches (whose shift is checked before the GEMM) accumulate into a second (d+1, d+1) matrix over up to
    RECENT_ROWS rows, added to ``S`` then: the GEMM accumulates over that many rows at most (as a long
    batch's blocks do), never over the run, and the matrices are not cleared and added after each batch.

    With ``precision="float32"`` each block's shifted rows and Gram matrix are float32 (the shift rounded
    to float32, so the float64 sums stay exact sums around it) and each block's Gram is added to the
    float64 sums: float32 rounding over at most one block of rows, never over the whole run.
    """

    def __init__(self, width: int, device: torch.device | str | None = None, precision: str = "float64") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.width = width
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.precision = precision
        self._dtype = torch.float64 if precision == "float64" else torch.float32
        self._buffers: dict[bool, torch.Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        d = self.width
        self._shift = torch.zeros(d, dtype=torch.float64, device=self.device)
        self._sums = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=self.device)
        self._n = 0
        self._cached: Moments | None = Moments.empty(d, self.device)
        self._nonfinite = False
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._recent: torch.Tensor | None = None
        self._recent_rows = 0

    @property
    def nonfinite(self) -> bool:
        """True once a batch held NaN or inf (such a batch is not accumulated)."""
        self._flush()
        return self._nonfinite

    @property
    def moments(self) -> Moments:
        """The samples seen as (n, float64 mean, float64 M2)."""
        self._flush()
        self._add_recent()
        if self._cached is None:
            d, n = self.width, self._n
            col = self._sums[d, :d]
            m2 = _mirrored(self._sums[:d, :d]) - torch.outer(col, col) / n
            self._cached = Moments(n, self._shift + col / n, m2)
        return self._cached

    @property
    def n(self) -> int:
        """Samples accumulated so far."""
        self._flush()
        return self._n

    def update(self, x: torch.Tensor) -> None:
        """Add one batch of samples: shape (n, width), or (..., width) where every leading index is a sample.

        A batch holding NaN/inf only sets the non-finite flag and is not accumulated (detected exactly:
        a non-finite value always makes its float64 column sums non-finite).
        """
        if x.ndim < 2 or x.shape[-1] != self.width:
            raise ValueError(f"expected (n, {self.width}) samples, got shape {tuple(x.shape)}")
        x = x.detach()
        if x.device != self.device:
            x = x.to(self.device)
        if x.dtype == torch.float64 and self._dtype != torch.float64:
            x = x.to(self._dtype)  # float64 activations in a float32 run: the blocks cannot hold them
        nb = x.shape[:-1].numel()
        if nb == 0:
            return
        if x.ndim == 2 and (self._pending_rows + nb) * (self.width + 1) * 8 < BLOCK_BYTES:
            # A small batch (per-input samples, small batch size): grouped with the next ones into one
            # update, so the fixed cost of an update is paid per block of rows, not per batch. A copy,
            # since the model may still change its output in place.
            self._pending.append(x.clone())
            self._pending_rows += nb
            return
        self._flush()
        self._update(x)

    def _flush(self) -> None:
        """Accumulate the grouped small batches; one holding NaN/inf is then left out on its own."""
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        before = self._n
        self._update(pending[0] if len(pending) == 1 else torch.cat(pending))
        if self._n == before and len(pending) > 1:  # the group held NaN/inf: keep its finite batches
            for part in pending:
                self._update(part)

    def _update(self, x: torch.Tensor) -> None:
        """Accumulate one (..., width) block of samples now."""
        d = self.width
        nb = x.shape[:-1].numel()
        wide = d * d > nb
        if self._n == 0 or wide:
            # First batch, or a wide layer (its GEMM dwarfs one more pass over x): exact batch mean first.
            total = float64_sums(x)
            if not bool(torch.isfinite(total).all()):
                self._nonfinite = True
                return
            mean = self._representable(total / nb)
            if self._n == 0:
                self._shift = mean
            elif bool((torch.square(mean - self._shift) > self._variance()).any()):
                self._move_shift(mean)
        if wide:
            # Shift checked and batch finite already: straight into the recent sums.
            if self._recent is None:
                self._recent = torch.zeros_like(self._sums)
            self._batch_gram(x, self._recent)
            self._recent_rows += nb
            self._n += nb
            self._cached = None
            if self._recent_rows >= RECENT_ROWS:
                self._add_recent()
            return
        # The batch's own sums, then one exact add: a GEMM accumulating straight into the large running
        # sums would round every term at their magnitude.
        batch = self._batch_gram(x)
        diagonal = batch.diagonal()
        if not bool(torch.isfinite(diagonal).all()):
            self._nonfinite = True
            return
        col = batch[d, :d]
        if bool((torch.square(col) / nb > 0.5 * diagonal[:d]).any()):
            # The batch sits further from the shift than its own spread: re-centre, then redo it.
            self._move_shift(self._representable(self._shift + col / nb))
            batch = self._batch_gram(x)
        self._sums += batch
        self._n += nb
        self._cached = None

    def _add_recent(self) -> None:
        """Fold the recent rows' Gram matrix into the sums."""
        if self._recent is not None and self._recent_rows:
            self._sums += self._recent
            self._recent.zero_()
            self._recent_rows = 0

    def merge(self, other: CovarianceAccumulator) -> None:
        """Fold another accumulator of the same layer into this one (two halves, two processes)."""
        if other.width != self.width:
            raise ValueError(f"cannot merge width {other.width} into width {self.width}")
        self.merge_moments(other.moments, nonfinite=other.nonfinite)

    def merge_moments(self, other: Moments, *, nonfinite: bool = False) -> None:
        """Fold in another part's moments (e.g. read from a store or gathered from a process), exactly."""
        if other.mean.shape[0] != self.width:
            raise ValueError(f"cannot merge width {other.mean.shape[0]} into width {self.width}")
        merged = merge_moments(self.moments, _moved(other, self.device))
        self._nonfinite = self._nonfinite or nonfinite
        if merged.n == self._n:
            return
        d = self.width
        self._shift = merged.mean.clone()
        self._sums = torch.zeros_like(self._sums)
        self._sums[:d, :d] = merged.m2
        self._sums[d, d] = merged.n
        self._n = merged.n
        self._cached = None
        if self._dtype != torch.float64:
            self._move_shift(self._representable(self._shift))

    def compute(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(n, mean, covariance), all float64."""
        m = self.moments
        return m.n, m.mean, covariance(m)

    def _variance(self) -> torch.Tensor:
        """Per-column variance of the samples so far (population), for the drift check."""
        d, n = self.width, self._n
        col = self._sums[d, :d] / n
        diagonal = self._sums.diagonal()[:d]
        if self._recent_rows:
            assert self._recent is not None
            col = col + self._recent[d, :d] / n
            diagonal = diagonal + self._recent.diagonal()[:d]
        return diagonal / n - col * col

    def _move_shift(self, shift: torch.Tensor) -> None:
        """Re-express the sums around a new shift: S_xx - s delta^T - delta s^T + n delta delta^T."""
        self._add_recent()
        d, n = self.width, self._n
        delta = shift - self._shift
        col = self._sums[d, :d].clone()
        top = self._sums[:d, :d]
        top.addr_(col, delta, alpha=-1.0).addr_(delta, col, alpha=-1.0).addr_(delta, delta, alpha=float(n))
        self._sums[d, :d] = col - n * delta
        self._sums[:d, d] = self._sums[d, :d]
        self._shift = shift

    def _representable(self, shift: torch.Tensor) -> torch.Tensor:
        """The shift rounded to the block dtype, so that float32 blocks are centred on exactly it."""
        return shift if self._dtype == torch.float64 else shift.to(self._dtype).to(torch.float64)

    def _batch_gram(self, x: torch.Tensor, into: torch.Tensor | None = None) -> torch.Tensor:
        """Y^T Y for Y = [x - shift, 1] as float64 (lower triangle only when wide), in row blocks of about
        BLOCK_BYTES (at least MIN_BLOCK_ROWS rows); added to `into` when given."""
        d = self.width
        lead = x.shape[0]
        per_lead = x.shape[1:-1].numel()
        itemsize = 8 if self._dtype == torch.float64 else 4
        step = max(1, -(-MIN_BLOCK_ROWS // per_lead), BLOCK_BYTES // (itemsize * per_lead * (d + 1)))
        step = min(lead, step)
        rows = step * per_lead
        # A channelwise view of a contiguous (N, C, ...) output is read in the output's own order into a
        # (d+1, rows) block (no transposing gather), whose Gram is the same GEMM on the transposed view.
        channels_first = x.ndim > 2 and not x.is_contiguous() and x.movedim(-1, 1).is_contiguous()
        buffer = self._block_buffer(rows, channels_first)
        shift = self._shift.to(self._dtype)
        lower = d + 1 > TRIANGLE_MIN_WIDTH
        gram = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=self.device) if into is None else into
        # float32 blocks: each block's Gram in float32, then added to the float64 sums.
        block = None if self._dtype == torch.float64 else torch.empty_like(gram, dtype=self._dtype)
        for start in range(0, lead, step):
            part = x[start : start + step]
            k = part.shape[:-1].numel()
            if channels_first:
                n = part.shape[0]
                source = part.movedim(-1, 1).reshape(n, d, -1)
                torch.sub(source, shift.view(1, d, 1), out=buffer[:d, :k].view(d, n, -1).movedim(0, 1))
                y = buffer[:, :k].T
            else:
                torch.sub(part, shift, out=buffer[:k, :d].view(part.shape))
                y = buffer[:k]
            if block is None:
                _add_gram(gram, y, lower)
            else:
                _add_gram(block.zero_(), y, lower)
                gram.add_(block)
        return gram

    def _block_buffer(self, rows: int, channels_first: bool) -> torch.Tensor:
        """The reused block of shifted rows with its column of ones: (rows, d+1), or (d+1, rows) when
        `channels_first`; grown when a block needs more rows."""
        held = self._buffers.get(channels_first)
        if held is None or held.shape[int(channels_first)] < rows:
            shape = (self.width + 1, rows) if channels_first else (rows, self.width + 1)
            held = self._buffers[channels_first] = torch.ones(shape, dtype=self._dtype, device=self.device)
        return held


def _add_gram(gram: torch.Tensor, y: torch.Tensor, lower: bool) -> None:
    """gram += y^T y; with `lower`, only its lower triangle, in row panels (each one GEMM)."""
    if not lower:
        gram.addmm_(y.T, y)
        return
    width = y.shape[1]
    panel = min(256, max(16, 1 << round(math.log2(width / 8))))
    for top in range(0, width, panel):
        bottom = min(width, top + panel)
        gram[top:bottom, :bottom].addmm_(y[:, top:bottom].T, y[:, :bottom])


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


def _mirrored(square: torch.Tensor) -> torch.Tensor:
    """The symmetric matrix whose lower triangle is `square`'s (its upper one may be stale)."""
    full = square.tril()
    full = full + full.T
    full.diagonal().mul_(0.5)  # doubled above; halving is exact
    return full


def _moved(m: Moments, device: torch.device) -> Moments:
    return Moments(m.n, m.mean.to(device), m.m2.to(device))
