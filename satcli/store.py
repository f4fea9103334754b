"""The HDF5 result store: per-checkpoint layer statistics, scores and optional activations.

The layout is specified in docs/store-format.md. Stores are written to a temporary file beside the target
and renamed into place on commit, so a crash never leaves a half-written store or damages an existing one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import zlib
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

import satcli
from satcli.errors import SatcliError
from satcli.spectral import LayerScore

try:  # ISA-L's deflate: the same zlib stream format (any reader inflates it), about ten times faster
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None

SCHEMA_VERSION = 1
FORMAT_NAME = "satcli-store"
# Target size of one activation chunk; each layer buffers exactly one chunk of rows in memory.
CHUNK_BYTES = 1 << 20
GZIP_LEVEL = 4
# ISA-L level used instead of zlib's GZIP_LEVEL when isal is installed (same compression ratio on activations).
ISAL_LEVEL = 2
# Compressed chunks waiting to be written, at most (bounds the memory the background compressor may hold).
MAX_PENDING_CHUNKS = 8
ACTIVATION_DTYPES = ("float32", "float16")
RESERVED_FILE_ATTRS = frozenset({"format", "schema_version", "satcli_version", "created"})
TEMP_MARKER = ".tmp-"


@dataclass(frozen=True)
class LayerMeta:
    """What a tracked layer is: its module path, type, width and how its samples were formed."""

    name: str
    type: str
    kind: str
    width: int
    order: int
    reduction: str
    activations_reduction: str


@dataclass(frozen=True)
class LayerStats:
    """A layer's streaming moments: enough to recompute the covariance and to merge partial runs."""

    samples: int
    mean: np.ndarray
    m2: np.ndarray
    eigenvalues: np.ndarray
    nonfinite: bool


@dataclass(frozen=True)
class CheckpointMeta:
    """Where a checkpoint's numbers came from: the model file, the data and the run's settings."""

    model_path: str
    model_sha256: str
    model_format: str
    data_spec: str
    options: dict
    thresholds: dict


@dataclass(frozen=True)
class StoredLayer:
    """One layer as read back from a store."""

    meta: LayerMeta
    stats: LayerStats
    cov: np.ndarray
    k: int | None
    saturation: float | None
    flags: tuple[str, ...]
    has_activations: bool


@dataclass(frozen=True)
class StoredCheckpoint:
    """One finished checkpoint as read back from a store; `key` addresses it in read_activations."""

    key: str
    meta: CheckpointMeta
    layers: tuple[StoredLayer, ...]
    num_inputs: int
    created: str
    complete: bool


def _now() -> str:
    """The current time as ISO-8601 UTC with an explicit offset (parseable by datetime.fromisoformat)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _to_json(value: Mapping[str, object], what: str) -> str:
    """Strict JSON text for an options/thresholds dict, so any JSON reader can parse the attribute."""
    try:
        return json.dumps(dict(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


def _plain(value: object) -> object:
    """An attribute value as a plain Python object (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _filtered_chunk(block: np.ndarray) -> bytes:
    """A whole chunk as HDF5's filter pipeline (shuffle, then deflate) would store it."""
    shuffled = np.ascontiguousarray(block.reshape(-1).view(np.uint8).reshape(-1, block.dtype.itemsize).T)
    if _isal_zlib is not None:
        return _isal_zlib.compress(shuffled, ISAL_LEVEL)
    return zlib.compress(shuffled, GZIP_LEVEL)


class _ChunkWriter:
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


class _RowBuffer:
    """One dataset's pending rows: a fixed chunk-sized array, handed off to HDF5 in whole aligned chunks."""

    def __init__(self, dataset: h5py.Dataset, rows: int, chunks: _ChunkWriter) -> None:
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


class CheckpointWriter:
    """Writes one checkpoint group: activations batch by batch, then statistics and scores on finish."""

    def __init__(
        self,
        group: h5py.Group,
        layers: Sequence[LayerMeta],
        *,
        store_activations: bool,
        activations_dtype: str,
        chunk_bytes: int,
    ) -> None:
        self._group = group
        self._layers = tuple(layers)
        self._store_activations = store_activations
        self._dtype = np.dtype(activations_dtype)
        self._chunk_bytes = chunk_bytes
        self._widths = {layer.name: int(layer.width) for layer in self._layers}
        self._layer_groups: dict[str, h5py.Group] = {}
        self._buffers: dict[str, _RowBuffer] = {}
        self._chunks = _ChunkWriter()
        self._labels: _RowBuffer | None = None
        # Inputs seen before the first labelled batch; back-filled with -1 if labels appear later.
        self._unlabeled_prefix = 0
        self._num_inputs = 0
        self._closed = False
        layers_group = group.create_group("layers")
        for index, layer in enumerate(self._layers):
            sub = layers_group.create_group(f"{index:03d}")
            sub.attrs.update(
                {
                    "name": layer.name,
                    "type": layer.type,
                    "kind": layer.kind,
                    "width": int(layer.width),
                    "order": int(layer.order),
                    "reduction": layer.reduction,
                    "activations_reduction": layer.activations_reduction,
                }
            )
            self._layer_groups[layer.name] = sub
            if store_activations:
                rows = self._chunk_rows_for(layer.width * self._dtype.itemsize)
                dataset = sub.create_dataset(
                    "activations",
                    shape=(0, layer.width),
                    maxshape=(None, layer.width),
                    dtype=self._dtype,
                    chunks=(rows, layer.width),
                    compression="gzip",
                    compression_opts=GZIP_LEVEL,
                    shuffle=True,
                )
                self._buffers[layer.name] = _RowBuffer(dataset, rows, self._chunks)

    @property
    def num_inputs(self) -> int:
        """Inputs appended so far."""
        return self._num_inputs

    def buffered_rows(self, layer_name: str) -> int:
        """Rows of `layer_name` held in memory and not yet written to HDF5 (never more than one chunk)."""
        return self._buffers[layer_name].fill if layer_name in self._buffers else 0

    def chunk_rows(self, layer_name: str) -> int:
        """Rows per HDF5 chunk (and per in-memory buffer) of `layer_name`'s activations; 0 when not stored."""
        return self._buffers[layer_name].rows if layer_name in self._buffers else 0

    def append(self, activations: Mapping[str, np.ndarray], labels: np.ndarray | None) -> None:
        """Add one batch: an (b, width) array per layer and optionally (b,) integer labels.

        Without stored activations the arrays only give the batch size, so the input count stays right.
        """
        self._check_open()
        batch = self._batch_size(activations, labels)
        if self._store_activations:
            # float16 storage saturates to +-inf above 65504 by design; numpy would warn on every batch.
            with np.errstate(over="ignore"):
                for name, buffer in self._buffers.items():
                    buffer.push(np.asarray(activations[name]).astype(self._dtype, copy=False))
            self._push_labels(labels, batch)
        self._num_inputs += batch

    def finish(
        self, stats: Mapping[str, LayerStats], scores: Sequence[LayerScore], *, num_inputs: int | None = None
    ) -> None:
        """Write each layer's moments, covariance, eigenvalues and score, then mark the checkpoint complete.

        `num_inputs` overrides the appended count, for runs that stream statistics without calling append.
        """
        self._check_open()
        by_name = {score.name: score for score in scores}
        unknown = sorted(set(by_name) - set(self._layer_groups))
        if unknown:
            raise ValueError(f"scores for layers not in this checkpoint: {unknown}")
        missing = [layer.name for layer in self._layers if layer.name not in stats]
        if missing:
            raise ValueError(f"no statistics for layers: {missing}")
        if num_inputs is not None:
            if self._store_activations and num_inputs != self._num_inputs:
                raise ValueError(f"num_inputs={num_inputs} but {self._num_inputs} activation rows were appended")
            self._num_inputs = int(num_inputs)
        arrays = {layer.name: self._stat_arrays(layer, stats[layer.name]) for layer in self._layers}
        for layer in self._layers:
            group = self._layer_groups[layer.name]
            self._write_layer(group, stats[layer.name], arrays[layer.name], by_name.get(layer.name))
        self.close()
        self._group.attrs["complete"] = True

    def close(self) -> None:
        """Flush buffered rows and record the input count; the checkpoint stays incomplete unless finished."""
        if self._closed:
            return
        for buffer in self._buffers.values():
            buffer.release()
        if self._labels is not None:
            self._labels.release()
        self._chunks.drain()
        self._group.attrs["num_inputs"] = self._num_inputs
        self._closed = True

    def _chunk_rows_for(self, row_bytes: int) -> int:
        return max(1, self._chunk_bytes // max(1, row_bytes))

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("checkpoint writer is already finished or closed")

    def _batch_size(self, activations: Mapping[str, np.ndarray], labels: np.ndarray | None) -> int:
        if self._store_activations:
            expected, given = set(self._widths), set(activations)
            if given != expected:
                raise ValueError(
                    f"activations must cover exactly the tracked layers; "
                    f"missing {sorted(expected - given)}, unknown {sorted(given - expected)}"
                )
        sizes: set[int] = set()
        for name, array in activations.items():
            shape = np.shape(array)
            width = self._widths.get(name)
            if width is not None and (len(shape) != 2 or shape[1] != width):
                raise ValueError(f"activations for {name!r} must have shape (b, {width}), got {shape}")
            sizes.add(int(shape[0]))
        if labels is not None:
            shape = np.shape(labels)
            if len(shape) != 1:
                raise ValueError(f"labels must have shape (b,), got {shape}")
            sizes.add(int(shape[0]))
        if len(sizes) > 1:
            raise ValueError(f"every array in a batch needs the same number of rows, got {sorted(sizes)}")
        if not sizes:
            raise ValueError("an empty batch has no size; pass num_inputs to finish() instead")
        return sizes.pop()

    def _push_labels(self, labels: np.ndarray | None, batch: int) -> None:
        if labels is None:
            if self._labels is None:
                self._unlabeled_prefix += batch
            else:
                self._labels.push(np.full(batch, -1, dtype=np.int64))
            return
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {array.dtype}")
        if self._labels is None:
            rows = self._chunk_rows_for(np.dtype(np.int64).itemsize)
            dataset = self._group.create_dataset(
                "labels",
                shape=(0,),
                maxshape=(None,),
                dtype=np.int64,
                chunks=(rows,),
                compression="gzip",
                compression_opts=GZIP_LEVEL,
                shuffle=True,
            )
            self._labels = _RowBuffer(dataset, rows, self._chunks)
            while self._unlabeled_prefix:
                step = min(self._unlabeled_prefix, rows)
                self._labels.push(np.full(step, -1, dtype=np.int64))
                self._unlabeled_prefix -= step
        self._labels.push(array.astype(np.int64, copy=False))

    @staticmethod
    def _stat_arrays(layer: LayerMeta, stats: LayerStats) -> dict[str, np.ndarray]:
        """The float64 datasets of one layer, checked against its width; cov is NaN below 2 samples."""
        width = layer.width
        mean = np.asarray(stats.mean, dtype=np.float64)
        m2 = np.asarray(stats.m2, dtype=np.float64)
        eigs = np.asarray(stats.eigenvalues, dtype=np.float64)
        if mean.shape != (width,) or m2.shape != (width, width) or eigs.shape != (width,):
            raise ValueError(
                f"statistics for {layer.name!r} do not match width {width}: "
                f"mean {mean.shape}, m2 {m2.shape}, eigenvalues {eigs.shape}"
            )
        samples = int(stats.samples)
        cov = m2 / (samples - 1) if samples >= 2 else np.full((width, width), np.nan)
        return {"mean": mean, "cov": cov, "m2": m2, "eigenvalues": eigs}

    @staticmethod
    def _write_layer(
        group: h5py.Group, stats: LayerStats, arrays: Mapping[str, np.ndarray], score: LayerScore | None
    ) -> None:
        for name, data in arrays.items():
            group.create_dataset(name, data=data, dtype=np.float64)
        samples = int(stats.samples)
        k = -1 if score is None or score.k is None else int(score.k)
        saturation = math.nan if score is None or score.saturation is None else float(score.saturation)
        group.attrs.update(
            {
                "samples": samples,
                "nonfinite": bool(stats.nonfinite),
                "k": k,
                "saturation": saturation,
                "flags": json.dumps(list(score.flags) if score is not None else []),
            }
        )


class StoreWriter:
    """Writes a store to a hidden temp file beside `path`; commit() renames it into place atomically.

    Use as a context manager: leaving the block normally commits, leaving it by an exception aborts.
    With `append=True` and an existing store at `path`, the temp file starts as a copy of that store, so
    commit adds the new checkpoints to the ones already there (still atomically: a failure leaves it as it was).
    """

    def __init__(
        self,
        path: Path,
        attrs: Mapping[str, object] | None = None,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        self._chunk_bytes = int(chunk_bytes)
        if self._chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        extra = dict(attrs or {})
        clash = sorted(RESERVED_FILE_ATTRS & set(extra))
        if clash:
            raise ValueError(f"file attributes {clash} are set by the store itself")
        for key, value in extra.items():
            if not isinstance(value, (str, int, float, bool, np.generic)):
                raise ValueError(f"file attribute {key!r} must be a str, int, float or bool")
        parent = self.path.parent
        if not parent.is_dir():
            raise SatcliError(f"cannot write store {self.path}: directory {parent} does not exist")
        if self.path.is_dir():
            raise SatcliError(f"cannot write store {self.path}: it is a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SatcliError(f"cannot write store {self.path}: directory {parent} is not writable")
        self.temp_path = parent / f".{self.path.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self._file: h5py.File | None = h5py.File(self.temp_path, "x")
        except OSError as exc:
            raise SatcliError(f"cannot write store {self.path}: {exc}") from exc
        self._file.attrs.update(
            {
                "format": FORMAT_NAME,
                "schema_version": SCHEMA_VERSION,
                "satcli_version": satcli.__version__,
                "created": _now(),
                **extra,
            }
        )
        self._checkpoints = self._file.create_group("checkpoints")
        self._current: CheckpointWriter | None = None
        if append and self.path.exists():
            self._continue(extra)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._file is not None:
            self.commit()

    def begin_checkpoint(
        self,
        meta: CheckpointMeta,
        layers: Sequence[LayerMeta],
        *,
        store_activations: bool,
        activations_dtype: str = "float32",
    ) -> CheckpointWriter:
        """Start the next /checkpoints/NNNN group; an unfinished previous checkpoint is left incomplete."""
        file = self._require_open()
        if activations_dtype not in ACTIVATION_DTYPES:
            raise ValueError(f"activations_dtype must be one of {ACTIVATION_DTYPES}, got {activations_dtype!r}")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError("layer names must be unique within a checkpoint")
        if store_activations and any(layer.width < 1 for layer in layers):
            raise ValueError("cannot store activations of a layer with width 0")
        if self._current is not None:
            self._current.close()
        group = self._checkpoints.create_group(f"{len(self._checkpoints):04d}")
        group.attrs.update(
            {
                "schema_version": SCHEMA_VERSION,
                "model_path": meta.model_path,
                "model_sha256": meta.model_sha256,
                "model_format": meta.model_format,
                "data_spec": meta.data_spec,
                "options": _to_json(meta.options, "options"),
                "thresholds": _to_json(meta.thresholds, "thresholds"),
                "created": _now(),
                "num_inputs": 0,
                "complete": False,
            }
        )
        file.flush()
        self._current = CheckpointWriter(
            group,
            layers,
            store_activations=store_activations,
            activations_dtype=activations_dtype,
            chunk_bytes=self._chunk_bytes,
        )
        return self._current

    def commit(self) -> Path:
        """Flush and close the temp file, fsync it and atomically replace `path` with it."""
        file = self._require_open()
        try:
            if self._current is not None:
                self._current.close()
            file.close()
            self._file = None
            fd = os.open(self.temp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._fsync_directory()
        return self.path

    def abort(self) -> None:
        """Close and delete the temp file; the target path is left as it was. Safe to call twice."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        self._current = None
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def _continue(self, extra: Mapping[str, object]) -> None:
        """Replace the fresh temp file by a copy of the existing store at `path`, to append checkpoints to it."""
        try:
            with _open_store(self.path) as existing:
                version = _plain(existing.attrs.get("schema_version"))
            if version != SCHEMA_VERSION:
                raise SatcliError(
                    f"cannot add to store {self.path}: it has schema {version} and this satcli writes "
                    f"{SCHEMA_VERSION}; write a new store"
                )
            self._require_open().close()
            shutil.copyfile(self.path, self.temp_path)
            file = h5py.File(self.temp_path, "r+")
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise SatcliError(f"cannot add to store {self.path}: {exc}") from exc
            raise
        self._file = file
        file.attrs.update(dict(extra))
        self._checkpoints = file["checkpoints"]

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise ValueError("store writer is already committed or aborted")
        return self._file

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; not every platform can open a directory, hence best effort.
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)


def is_satcli_store(path: Path) -> bool:
    """True when `path` is an HDF5 file marked as a satcli store (any schema version)."""
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as file:
            return _plain(file.attrs.get("format")) == FORMAT_NAME
    except OSError:
        return False


def check_store_target(path: Path, inputs: Sequence[Path], *, replace_foreign: bool = False) -> None:
    """Refuse a store path that would destroy data, before any work is done.

    Never a path that is also an input (a model or data file), never an existing file that is not a satcli
    store unless `replace_foreign`, and the folder must exist and be writable now, not after the first
    checkpoint has been scored.
    """
    path = Path(path)
    for given in inputs:
        if _same_file(path, Path(given)):
            raise SatcliError(f"refusing to write the store to {path}: it is also an input ({given})")
    if path.is_dir():
        raise SatcliError(f"cannot write store {path}: it is a directory")
    if path.exists() and not replace_foreign and not is_satcli_store(path):
        raise SatcliError(f"refusing to replace {path}: it exists and is not a satcli store (force to overwrite it)")
    parent = path.parent
    if not parent.is_dir():
        raise SatcliError(f"cannot write store {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SatcliError(f"cannot write store {path}: directory {parent} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (also through links); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


@contextlib.contextmanager
def _open_store(path: Path) -> Iterator[h5py.File]:
    """Open a store read-only after checking it is one this satcli can read."""
    path = Path(path)
    if not path.exists():
        raise SatcliError(f"store not found: {path}")
    if path.is_dir():
        raise SatcliError(f"{path} is a directory, not a satcli store")
    if not h5py.is_hdf5(path):
        raise SatcliError(f"{path} is not an HDF5 file, so not a satcli store")
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise SatcliError(f"cannot open store {path}: {exc}") from exc
    with file:
        if _plain(file.attrs.get("format")) != FORMAT_NAME:
            raise SatcliError(f"{path} is an HDF5 file but not a satcli store (no format={FORMAT_NAME!r})")
        _check_schema(path, file.attrs.get("schema_version"))
        try:
            yield file
        except (KeyError, TypeError, ValueError) as exc:
            raise SatcliError(f"{path} is a damaged satcli store: {exc}") from exc


def _check_schema(path: Path, value: object) -> None:
    version = _plain(value)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SatcliError(f"{path} is a damaged satcli store: bad schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SatcliError(
            f"{path} was written by a newer satcli (schema {version}); "
            f"this satcli reads up to {SCHEMA_VERSION} — upgrade satcli"
        )


def _checkpoint_keys(file: h5py.File) -> list[str]:
    return sorted(file["checkpoints"].keys(), key=int)


def _read_layer(group: h5py.Group) -> StoredLayer:
    attrs = group.attrs
    meta = LayerMeta(
        name=str(attrs["name"]),
        type=str(attrs["type"]),
        kind=str(attrs["kind"]),
        width=int(attrs["width"]),
        order=int(attrs["order"]),
        reduction=str(attrs["reduction"]),
        activations_reduction=str(attrs["activations_reduction"]),
    )
    stats = LayerStats(
        samples=int(attrs["samples"]),
        mean=group["mean"][()],
        m2=group["m2"][()],
        eigenvalues=group["eigenvalues"][()],
        nonfinite=bool(attrs["nonfinite"]),
    )
    k = int(attrs["k"])
    saturation = float(attrs["saturation"])
    return StoredLayer(
        meta=meta,
        stats=stats,
        cov=group["cov"][()],
        k=None if k < 0 else k,
        saturation=None if math.isnan(saturation) else saturation,
        flags=tuple(str(flag) for flag in json.loads(attrs["flags"])),
        has_activations="activations" in group,
    )


def _read_checkpoint(path: Path, key: str, group: h5py.Group) -> StoredCheckpoint:
    attrs = group.attrs
    _check_schema(path, attrs["schema_version"])
    meta = CheckpointMeta(
        model_path=str(attrs["model_path"]),
        model_sha256=str(attrs["model_sha256"]),
        model_format=str(attrs["model_format"]),
        data_spec=str(attrs["data_spec"]),
        options=json.loads(attrs["options"]),
        thresholds=json.loads(attrs["thresholds"]),
    )
    layers_group = group["layers"]
    layers = tuple(_read_layer(layers_group[name]) for name in sorted(layers_group.keys(), key=int))
    return StoredCheckpoint(
        key=key,
        meta=meta,
        layers=layers,
        num_inputs=int(attrs["num_inputs"]),
        created=str(attrs["created"]),
        complete=bool(attrs["complete"]),
    )


def read_store(path: Path) -> tuple[dict[str, object], list[StoredCheckpoint]]:
    """The file attributes and every complete checkpoint, in the order written; incomplete ones are skipped."""
    with _open_store(path) as file:
        attrs = {key: _plain(value) for key, value in file.attrs.items()}
        checkpoints = []
        for key in _checkpoint_keys(file):
            group = file["checkpoints"][key]
            if bool(group.attrs.get("complete", False)):
                checkpoints.append(_read_checkpoint(Path(path), key, group))
        return attrs, checkpoints


def _checkpoint_group(file: h5py.File, path: Path, key: str) -> h5py.Group:
    checkpoints = file["checkpoints"]
    if key not in checkpoints:
        raise SatcliError(f"{path} has no checkpoint {key!r} (has {', '.join(_checkpoint_keys(file)) or 'none'})")
    group = checkpoints[key]
    _check_schema(path, group.attrs["schema_version"])
    if not bool(group.attrs["complete"]):
        raise SatcliError(f"checkpoint {key} in {path} is incomplete (its run did not finish)")
    return group


def read_activations(path: Path, checkpoint_key: str, layer_name: str) -> np.ndarray:
    """The (num_inputs, width) activations of one layer, in the stored dtype (float32 or float16)."""
    with _open_store(path) as file:
        group = _checkpoint_group(file, Path(path), checkpoint_key)
        layers = group["layers"]
        for index in sorted(layers.keys(), key=int):
            layer = layers[index]
            if str(layer.attrs["name"]) != layer_name:
                continue
            if "activations" not in layer:
                raise SatcliError(f"checkpoint {checkpoint_key} in {path} was stored without activations")
            return layer["activations"][()]
        raise SatcliError(f"checkpoint {checkpoint_key} in {path} has no layer {layer_name!r}")


def read_labels(path: Path, checkpoint_key: str) -> np.ndarray | None:
    """The (num_inputs,) int64 labels of a checkpoint (-1 = unlabeled), or None when none were stored."""
    with _open_store(path) as file:
        group = _checkpoint_group(file, Path(path), checkpoint_key)
        return group["labels"][()] if "labels" in group else None
