"""Exact streaming mean and covariance of one layer, torchmetrics-style (update / compute / reset / merge).

The maths of merging lives in pure functions on Moments (moments.py); this class wraps them with a fast
shifted-sums update for the hot path."""

from __future__ import annotations

import torch

from satcli.core.blocks import (
    BLOCK_BYTES,
    MIN_BLOCK_ROWS,
    PANEL_ROWS,
    TRIANGLE_MIN_WIDTH,
    Blocks,
    float64_sums,
    mirror,
    scratch,
)
from satcli.core.moments import Moments
from satcli.core.precision import Float32Bound, RoundingTrack

# Precision of the per-block Gram matrices: float64 (exact to rounding, the default) or float32 (2x less
# arithmetic and memory traffic; sums stay float64 and blocks are short, see docs/method.md sec. 1 for its error).
PRECISIONS = ("float64", "float32")

# A wide layer's block moves the shift when its mean lies more than sqrt(DRIFT) standard deviations (of the
# samples so far) from it, per column. M2 = S - s s^T / n cancels by a factor 1 + delta^2 for a mean delta
# standard deviations from the shift, so float64 sums tolerate 4 (a factor 17 on ~1e-16); 256-row block means
# of token streams stray past 1 standard deviation in some column of thousands all the time (113 moves of a
# 3,072 x 3,072 matrix per 2,048 tokens of a GPT-2 shape at 1, none at 16). float32 blocks round the shifted
# rows themselves, so they keep the shift within one standard deviation.
DRIFT = {torch.float64: 16.0, torch.float32: 1.0}


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
    blocks' GEMMs accumulate straight into ``S`` (no second matrix). MKL's float64 kernels (this torch's
    BLAS) load C into their accumulators, so each term is rounded at the running sums' magnitude (measured:
    ~70 ulp of C per 3000 rows, where a separate block Gram would add 1): a relative error growing like
    sqrt(n) eps, 1e-14 in the Frobenius norm at 1e5-2e5 rows of widths 256-768 against numpy (1e-15 with a
    separate matrix), well inside the 1e-10 of the tests. The column sums, which give the mean and which one
    far outlier can make huge next to each term, are summed within each block and added once per block.
    Each block's shift and finiteness are checked before its GEMM from those column sums, read from the
    cached block (no extra pass over the batch); a non-finite block takes the batch's earlier blocks back.

    ``moments`` builds one new d x d M2 and leaves the accumulator usable; ``take_moments`` turns the sums
    into M2 in place (no d x d copy) at the end of a run, after which the accumulator refuses updates until
    ``reset``.

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
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        d = self.width
        self._shift = torch.zeros(d, dtype=torch.float64, device=self.device)
        self._sums = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=self.device)
        self._n = 0
        self._nonfinite = False
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._taken = False
        # float32 only: what the rounding bound needs (docs/method.md sec. 1); a few scalars per block.
        self._track = RoundingTrack() if self._dtype == torch.float32 else None

    @property
    def nonfinite(self) -> bool:
        """True once a batch held NaN or inf (such a batch is not accumulated)."""
        self._flush()
        return self._nonfinite

    @property
    def moments(self) -> Moments:
        """The samples seen as (n, float64 mean, float64 M2): one new d x d matrix, the sums stay as they are."""
        self._usable()
        self._flush()
        d, n = self.width, self._n
        if n == 0:
            return Moments.empty(d, self.device)
        m2 = torch.empty(d, d, dtype=torch.float64, device=self.device).copy_(self._sums[:d, :d])
        return self._finished(m2)

    def take_moments(self) -> Moments:
        """The samples seen as Moments whose M2 is the sums' own storage, turned into M2 in place: the end of a
        run's step, without a d x d copy. The accumulator is spent then (update, merge and moments raise)
        until reset()."""
        self._usable()
        self._flush()
        self._taken = True
        d, n = self.width, self._n
        if n == 0:
            return Moments.empty(d, self.device)
        # Row i of the top d x d block moves from offset i (d+1) to i d of the storage, panel by panel in
        # ascending order: a panel's destination never reaches a later panel's source.
        flat = self._sums.view(-1)
        col = self._sums[d, :d].clone()
        for top in range(1, d, PANEL_ROWS):
            bottom = min(d, top + PANEL_ROWS)
            flat[top * d : bottom * d].view(bottom - top, d).copy_(self._sums[top:bottom, :d].clone())
        m2 = flat[: d * d].view(d, d)
        return self._finished(m2, col)

    def rounding_bound(self, moments: Moments | None = None) -> Float32Bound | None:
        """The proven bound on ||cov - cov_exact||_F of a float32 run (docs/method.md sec. 1), None for float64
        or below two samples, from the tracked per-block scalars and `moments` (default: the moments now; pass
        the ones take_moments handed over, or already built, to not build them again)."""
        if self._track is None:
            return None
        moments = self.moments if moments is None else moments
        if moments.n < 2:
            return None
        offset = float(torch.linalg.vector_norm(moments.mean - self._shift))
        return self._track.bound(moments.n, self.width, float(moments.m2.diagonal().sum()), offset)

    def _finished(self, top: torch.Tensor, col: torch.Tensor | None = None) -> Moments:
        """Moments from `top`, a contiguous copy of the sums' top block (or the block itself): ``s s^T / n``
        subtracted and the lower triangle mirrored, in place (mirrored last, so M2 is exactly symmetric)."""
        d, n = self.width, self._n
        col = self._sums[d, :d] if col is None else col
        top.addr_(col, col, alpha=-1.0 / n)
        mirror(top)
        return Moments(n, self._shift + col / n, top)

    def _usable(self) -> None:
        if self._taken:
            raise RuntimeError(
                "this accumulator's sums were handed over by take_moments(); call reset() before using it again"
            )

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
        self._usable()
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
        if self._n == 0:
            # First batch: its exact mean is the shift (one more pass over x, once per run).
            total = float64_sums(x)
            if not bool(torch.isfinite(total).all()):
                self._nonfinite = True
                return
            self._shift = self._representable(total / nb)
        if d * d > nb:
            self._update_wide(x)
            return
        # The batch's own sums, then one exact add: its drift check needs the batch's own spread (the
        # diagonal), known only after its GEMM, and the GEMM is cheap next to the batch here.
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
        if self._track is not None:
            self._track.block(self._step(x) * x.shape[1:-1].numel(), float(batch.diagonal()[:d].sum()))
        self._sums += batch
        self._n += nb

    def _update_wide(self, x: torch.Tensor) -> None:
        """A wide layer's batch, block by block straight into the sums. Each block's column sums (from the
        cached block) are checked first: a non-finite block takes the batch's earlier blocks back out and
        leaves the batch out; a block whose mean lies further from the shift than DRIFT allows moves the shift
        to it (exact) before its GEMM."""
        blocks = self._blocks(x)
        for start in range(0, x.shape[0], blocks.step):
            part = x[start : start + blocks.step]
            k = part.shape[:-1].numel()
            y = blocks.fill(part, self._shift)
            col: torch.Tensor | None = y[:, : self.width].sum(dim=0, dtype=torch.float64)
            if not bool(torch.isfinite(col).all()):
                self._nonfinite = True
                for back in range(0, start, blocks.step):  # this batch's earlier blocks, taken back out
                    self._add_wide(blocks, blocks.fill(x[back : min(start, back + blocks.step)], self._shift), -1)
                return
            if self._n and bool((torch.square(col / k) > DRIFT[self._dtype] * self._variance()).any()):
                self._move_shift(self._representable(self._shift + col / k))
                y = blocks.fill(part, self._shift)
                col = None
            self._add_wide(blocks, y, 1, col)

    def _add_wide(self, blocks: Blocks, y: torch.Tensor, sign: int, col: torch.Tensor | None = None) -> None:
        """sums += sign [y, 1]^T [y, 1] for one block: its Gram by GEMM straight into the sums, its column
        sums (`col`, or summed here) and count added once. The GEMM rounds each term at the sums' magnitude
        (MKL's kernels accumulate into C), which a far outlier can make huge next to the terms; the column
        sums, which give the mean, are summed within the block first and so rounded once per block."""
        d = self.width
        col = y[:, :d].sum(dim=0, dtype=torch.float64) if col is None else col
        blocks.add(self._sums[:d, :d], y[:, :d], float(sign))
        if self._track is not None:
            self._track.block(y.shape[0], sign * blocks.trace())
        self._sums[d, :d].add_(col, alpha=sign)
        self._sums[d, d] += sign * y.shape[0]
        self._n += sign * y.shape[0]

    def merge(self, other: CovarianceAccumulator) -> None:
        """Fold another accumulator of the same layer into this one (two halves, two processes)."""
        if other.width != self.width:
            raise ValueError(f"cannot merge width {other.width} into width {self.width}")
        moments = other.moments
        bound = other.rounding_bound(moments)
        self.merge_moments(moments, nonfinite=other.nonfinite, rounding=None if bound is None else bound.eps)

    def merge_moments(self, other: Moments, *, nonfinite: bool = False, rounding: float | None = None) -> None:
        """Fold in another part's moments (e.g. read from a store or gathered from a process), exactly.

        The sums are re-centred on the merged mean first, then the other part's M2 and n delta delta^T
        (delta = its mean minus the merged mean) are added in place: only positive terms on top of the
        exact re-centring, as in Chan et al.'s merge (moments.py), and no d x d temporary. `rounding`: the
        other part's float32 bound (LayerStats.rounding; None counts as exact, a float64 part)."""
        self._usable()
        if other.mean.shape[0] != self.width:
            raise ValueError(f"cannot merge width {other.mean.shape[0]} into width {self.width}")
        self._flush()
        self._nonfinite = self._nonfinite or nonfinite
        if other.n == 0:
            return
        d, n, m = self.width, self._n, int(other.n)
        mean = other.mean.to(self.device, torch.float64)
        offset = mean - self._shift
        target = mean if n == 0 else self._shift + (self._sums[d, :d] + m * offset) / (n + m)
        self._move_shift(self._representable(target))
        delta = mean - self._shift
        if self._track is not None:
            self._track.merged(m, rounding, float(torch.linalg.vector_norm(delta)))
        top = self._sums[:d, :d]
        top += other.m2.to(self.device, torch.float64)
        top.addr_(delta, delta, alpha=float(m))
        self._sums[d, :d] += m * delta
        self._sums[:d, d] = self._sums[d, :d]
        self._sums[d, d] += m
        self._n = n + m

    def compute(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(n, mean, covariance), all float64 (the covariance is the new M2 of `moments`, scaled in place)."""
        m = self.moments
        if m.n < 2:
            return m.n, m.mean, m.m2.zero_()
        return m.n, m.mean, m.m2.div_(m.n - 1)

    def _variance(self) -> torch.Tensor:
        """Per-column variance of the samples so far (population), for the drift check."""
        d, n = self.width, self._n
        col = self._sums[d, :d] / n
        return self._sums.diagonal()[:d] / n - col * col

    def _move_shift(self, shift: torch.Tensor) -> None:
        """Re-express the sums around a new shift: S_xx - s delta^T - delta s^T + n delta delta^T."""
        d, n = self.width, self._n
        delta = shift - self._shift
        if self._track is not None and n:
            self._track.moved += float(torch.linalg.vector_norm(delta))
        col = self._sums[d, :d].clone()
        top = self._sums[:d, :d]
        top.addr_(col, delta, alpha=-1.0).addr_(delta, col, alpha=-1.0).addr_(delta, delta, alpha=float(n))
        self._sums[d, :d] = col - n * delta
        self._sums[:d, d] = self._sums[d, :d]
        self._shift = shift

    def _representable(self, shift: torch.Tensor) -> torch.Tensor:
        """The shift rounded to the block dtype, so that float32 blocks are centred on exactly it."""
        return shift if self._dtype == torch.float64 else shift.to(self._dtype).to(torch.float64)

    def _batch_gram(self, x: torch.Tensor) -> torch.Tensor:
        """Y^T Y for Y = [x - shift, 1] as a new float64 matrix (lower triangle only when wide)."""
        gram = torch.zeros(self.width + 1, self.width + 1, dtype=torch.float64, device=self.device)
        blocks = self._blocks(x)
        for start in range(0, x.shape[0], blocks.step):
            blocks.add(gram, blocks.fill(x[start : start + blocks.step], self._shift))
        return gram

    def _blocks(self, x: torch.Tensor) -> Blocks:
        """How `x` is cut into blocks of about BLOCK_BYTES (at least MIN_BLOCK_ROWS rows), with their buffer."""
        d = self.width
        per_lead = x.shape[1:-1].numel()
        step = self._step(x)
        # A channelwise view of a contiguous (N, C, ...) output is read in the output's own order into a
        # (d+1, rows) block (no transposing gather), whose Gram is the same GEMM on the transposed view.
        channels_first = x.ndim > 2 and not x.is_contiguous() and x.movedim(-1, 1).is_contiguous()
        buffer = self._block_buffer(step * per_lead, channels_first)
        return Blocks(step, channels_first, buffer, self._dtype, d + 1 > TRIANGLE_MIN_WIDTH)

    def _step(self, x: torch.Tensor) -> int:
        """Leading indices per block of `x` (precision.max_block_rows, at most the batch)."""
        per_lead = x.shape[1:-1].numel()
        itemsize = 8 if self._dtype == torch.float64 else 4
        step = max(1, -(-MIN_BLOCK_ROWS // per_lead), BLOCK_BYTES // (itemsize * per_lead * (self.width + 1)))
        return min(x.shape[0], step)

    def _block_buffer(self, rows: int, channels_first: bool) -> torch.Tensor:
        """The block of shifted rows with its column of ones: (rows, d+1), or (d+1, rows) when
        `channels_first`; a view of the thread's scratch shared by every accumulator (`blocks.scratch`)."""
        d = self.width
        flat = scratch(rows * (d + 1), self._dtype, self.device)
        if channels_first:
            buffer = flat.view(d + 1, rows)
            buffer[d].fill_(1.0)
        else:
            buffer = flat.view(rows, d + 1)
            buffer[:, d].fill_(1.0)
        return buffer
