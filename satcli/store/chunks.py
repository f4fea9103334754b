"""Activation rows streamed into chunked, compressed HDF5 datasets, compressed on a background thread."""

from __future__ import annotations

import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import h5py
import numpy as np

try:  # ISA-L's deflate: the same zlib stream format (any reader inflates it), about ten times faster
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None


# Target size of one activation chunk; each layer buffers exactly one chunk of rows in memory.
CHUNK_BYTES = 1 << 20


GZIP_LEVEL = 4


# ISA-L level used instead of zlib's GZIP_LEVEL when isal is installed (same compression ratio on activations).
ISAL_LEVEL = 2


# Compressed chunks waiting to be written, at most (bounds the memory the background compressor may hold).
MAX_PENDING_CHUNKS = 8


def _filtered_chunk(block: np.ndarray) -> bytes:
    """A whole chunk as HDF5's filter pipeline (shuffle, then deflate) would store it."""
    shuffled = np.ascontiguousarray(block.reshape(-1).view(np.uint8).reshape(-1, block.dtype.itemsize).T)
    if _isal_zlib is not None:
        return _isal_zlib.compress(shuffled, ISAL_LEVEL)
    return zlib.compress(shuffled, GZIP_LEVEL)


class ChunkWriter:
    """Compresses whole chunks on a background thread and writes them with HDF5's direct chunk write.

    The chunks are exactly what the datasets' declared shuffle + gzip filters produce, so readers see an
    ordinary filtered dataset; only the compression moves off the hot path (zlib and ISA-L release the
    GIL). HDF5 itself is only touched from the calling thread. At most MAX_PENDING_CHUNKS wait in memory.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[h5py.Dataset, int, int, Future[bytes]]] = deque()

    def submit(self, dataset: h5py.Dataset, start: int, rows: int, block: np.ndarray) -> None:
        """Queue one chunk: `block` holds the chunk's full shape (rows past `rows` are padding), owned by us."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satcli-store")
        self._pending.append((dataset, start, rows, self._pool.submit(_filtered_chunk, block)))
        self._write_ready(len(self._pending) > MAX_PENDING_CHUNKS)

    def drain(self) -> None:
        """Write every queued chunk and stop the background thread."""
        self._write_ready(True, everything=True)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _write_ready(self, wait: bool, everything: bool = False) -> None:
        while self._pending and (wait or self._pending[0][3].done()):
            dataset, start, rows, future = self._pending.popleft()
            payload = future.result()
            if dataset.shape[0] < start + rows:
                dataset.resize(start + rows, axis=0)
            dataset.id.write_direct_chunk((start, *([0] * (dataset.ndim - 1))), payload)
            wait = everything or len(self._pending) > MAX_PENDING_CHUNKS


class RowBuffer:
    """One dataset's pending rows: a fixed chunk-sized array, handed off to HDF5 in whole aligned chunks."""

    def __init__(self, dataset: h5py.Dataset, rows: int, chunks: ChunkWriter) -> None:
        self.dataset = dataset
        self.rows = rows
        self.fill = 0
        self.written = 0
        self._chunks = chunks
        self._block: np.ndarray | None = None

    def push(self, data: np.ndarray) -> None:
        """Append rows; `data` must already have the dataset's dtype and trailing shape."""
        pos, total = 0, data.shape[0]
        while pos < total:
            if self._block is None:
                self._block = np.empty((self.rows, *self.dataset.shape[1:]), dtype=self.dataset.dtype)
            take = min(self.rows - self.fill, total - pos)
            self._block[self.fill : self.fill + take] = data[pos : pos + take]
            self.fill += take
            pos += take
            if self.fill == self.rows:
                self.flush()

    def flush(self) -> None:
        """Hand over whatever is buffered (a final partial chunk included, zero-padded to the chunk shape)."""
        if self.fill and self._block is not None:
            self._block[self.fill :] = 0
            self._chunks.submit(self.dataset, self.written, self.fill, self._block)
            self.written += self.fill
            self.fill = 0
            self._block = None  # the compressor owns the old block now

    def release(self) -> None:
        """Flush and drop the buffer's memory."""
        self.flush()
        self._block = None
