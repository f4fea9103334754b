"""Writes a store atomically and without copying it: a new store is a temp file renamed into place on
commit; checkpoints added to an existing store are written to a temp file first and copied into the store
in place on commit (O(size of the new checkpoints), not O(size of the store)). Either way under the store's
write lock (lock.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

import satcli
from satcli.core.state import CheckpointMeta, LayerMeta
from satcli.errors import SatcliError
from satcli.store.checkpoint import CheckpointWriter
from satcli.store.chunks import CHUNK_BYTES
from satcli.store.encoding import (
    ACTIVATION_DTYPES,
    FORMAT_NAME,
    RESERVED_FILE_ATTRS,
    SCHEMA_VERSION,
    now_iso,
    to_json,
)
from satcli.store.lock import TEMP_MARKER, acquire, release, remove_stale_temps, temp_prefix
from satcli.store.reader import open_store

__all__ = ["TEMP_MARKER", "StoreWriter"]

# How long commit retries opening a store another process (a reader) has open right now.
OPEN_RETRY_SECONDS = 30.0


# Writers between their lock and their commit or abort (weakly held): abort_open_writers() is the clean-up of a
# process told to stop (SIGTERM, Ctrl-C), which can arrive before a writer's `with` block has started.
_OPEN: weakref.WeakSet[StoreWriter] = weakref.WeakSet()


def abort_open_writers() -> None:
    """Abort every writer of this process that has neither committed nor aborted: temp files go, locks too."""
    for writer in list(_OPEN):
        writer.abort()


class StoreWriter:
    """Writes a store to a hidden temp file beside `path`; commit() renames it into place atomically.

    Use as a context manager: leaving the block normally commits, leaving it by an exception aborts.
    With `append=True` and an existing store at `path`, the temp file holds only the new checkpoints and
    commit copies them into the store in place: a failure before commit leaves the store as it was, byte
    for byte. The store's write lock is held from construction to commit/abort (`wait`: wait for another
    writer instead of failing); temp files of dead writers are removed on the way.
    """

    def __init__(
        self,
        path: Path,
        attrs: Mapping[str, object] | None = None,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        append: bool = False,
        wait: bool = False,
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
        self.temp_path = parent / f"{temp_prefix(self.path)}{os.getpid()}-{secrets.token_hex(4)}"
        self._file: h5py.File | None = None
        self._locked = False
        self._current: CheckpointWriter | None = None
        acquire(self.path, wait=wait)
        self._locked = True
        _OPEN.add(self)  # until commit or abort: a signal between here and `with` still cleans up
        self._appending = False  # adding to an existing store (its groups are read when committing)
        try:
            remove_stale_temps(self.path)
            if append and self.path.exists():
                _check_existing(self.path)
                self._appending = True
            self._file = h5py.File(self.temp_path, "x")
            self._attrs = extra
            self._file.attrs.update(
                {
                    "format": FORMAT_NAME,
                    "schema_version": SCHEMA_VERSION,
                    "satcli_version": satcli.__version__,
                    "created": now_iso(),
                    **extra,
                }
            )
            self._checkpoints = self._file.create_group("checkpoints")
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise SatcliError(f"cannot write store {self.path}: {exc}") from exc
            raise

    @property
    def partial(self) -> bool:
        """True for a data shard's partial store: its checkpoints always keep their moments, a merge needs
        them (a layer-split part, `split = "layers"`, joins by concatenating layers and needs none)."""
        return bool(self._attrs.get("partial", False)) and self._attrs.get("split", "data") == "data"

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
        keep_moments: bool = True,
    ) -> CheckpointWriter:
        """Start the next /checkpoints/NNNN group; an unfinished previous checkpoint is left incomplete.

        `keep_moments`: write each layer's m2 (merges and projections need it; re-scoring does not)."""
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
                "options": to_json(meta.options, "options"),
                "thresholds": to_json(meta.thresholds, "thresholds"),
                "created": now_iso(),
                "num_inputs": 0,
                "complete": False,
                # Which command wrote it (a store's file attribute names only its last writer): analyze replaces
                # a store only when it wrote every checkpoint in it (store/safety.py).
                "command": str(self._attrs.get("command", "")),
            }
        )
        file.flush()
        self._current = CheckpointWriter(
            group,
            layers,
            store_activations=store_activations,
            activations_dtype=activations_dtype,
            chunk_bytes=self._chunk_bytes,
            keep_moments=keep_moments,
        )
        return self._current

    def commit(self) -> Path:
        """Finish the temp file; then rename it into place (a new store) or copy its checkpoints into the store."""
        file = self._require_open()
        try:
            if self._current is not None:
                self._current.close()
            file.close()
            self._file = None
            if self._appending:
                self._copy_into_store()
            else:
                _fsync(self.temp_path)
                os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._fsync_directory()
        self.abort()  # nothing left to delete; gives back the lock
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
        if self._locked:
            self._locked = False
            release(self.path)
        _OPEN.discard(self)

    def _copy_into_store(self) -> None:
        """Copy the temp file's checkpoint groups into the existing store after its last group, in place.

        The store is modified only here, for the time of a copy of the new groups (already compressed
        chunks are copied as they are). Each group arrives with `complete = false` and is marked complete
        only after its whole copy is flushed, so a crash in between leaves a group readers skip.
        """
        with h5py.File(self.temp_path, "r+") as source, _open_retrying(self.path, "r+") as store:
            checkpoints = store["checkpoints"]
            start = len(checkpoints)
            for offset, key in enumerate(sorted(source["checkpoints"].keys(), key=int)):
                group = source["checkpoints"][key]
                complete = bool(group.attrs["complete"])
                group.attrs["complete"] = False
                name = f"{start + offset:04d}"
                checkpoints.copy(group, name)
                store.flush()
                if complete:
                    checkpoints[name].attrs["complete"] = True
                    store.flush()
            # Older schemas are upgraded in place: each group keeps its own schema_version.
            store.attrs.update({**self._attrs, "schema_version": SCHEMA_VERSION, "satcli_version": satcli.__version__})
        _fsync(self.path)

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


def _check_existing(path: Path) -> None:
    """Refuse a foreign, damaged or newer store at `path` before anything is written."""
    try:
        with open_store(path) as file:
            if not isinstance(file.get("checkpoints"), h5py.Group):
                raise SatcliError(f"{path} is a damaged satcli store: it has no checkpoints group")
    except OSError as exc:
        raise SatcliError(f"cannot add to store {path}: {exc}") from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_retrying(path: Path, mode: str) -> h5py.File:
    """Open `path`, retrying while HDF5's own file lock says a reader has it open right now."""
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    while True:
        try:
            return h5py.File(path, mode)
        except OSError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise SatcliError(f"cannot add to store {path}: {exc}") from exc
            time.sleep(0.1)
