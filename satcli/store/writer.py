"""Writes a store atomically: a temp file beside the target, renamed into place on commit."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
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
from satcli.store.reader import open_store

TEMP_MARKER = ".tmp-"


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
                "created": now_iso(),
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
                "options": to_json(meta.options, "options"),
                "thresholds": to_json(meta.thresholds, "thresholds"),
                "created": now_iso(),
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
            with open_store(self.path):
                pass  # refuses foreign, damaged and newer stores; older schemas are upgraded in place
            self._require_open().close()
            shutil.copyfile(self.path, self.temp_path)
            file = h5py.File(self.temp_path, "r+")
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise SatcliError(f"cannot add to store {self.path}: {exc}") from exc
            raise
        self._file = file
        file.attrs.update({**dict(extra), "schema_version": SCHEMA_VERSION, "satcli_version": satcli.__version__})
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
