"""Checks that a store path can be written without destroying anything."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py

from satcli.errors import SatcliError
from satcli.store.encoding import FORMAT_NAME, plain


def is_satcli_store(path: Path) -> bool:
    """True when `path` is an HDF5 file marked as a satcli store (any schema version)."""
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as file:
            return plain(file.attrs.get("format")) == FORMAT_NAME
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


def others_checkpoints(path: Path, command: str, models: Sequence[Path]) -> list[str]:
    """The checkpoints of the store at `path` that `command` on `models` did not write, as "COMMAND of MODEL".

    A checkpoint is this run's own when its command (or, in older stores, the store's) is `command` and its
    model is one of `models`: the same file, or a file with the stored sha256 (the model was moved). Re-running
    a command may replace its own result; anything else in the store (a Monitor's trajectory, another model's
    scores) is another run's. An unreadable store counts as one foreign entry.
    """
    shas: dict[Path, str | None] = {}
    foreign: list[str] = []
    try:
        with h5py.File(path, "r") as file:
            default = plain(file.attrs.get("command")) or "unknown"
            group = file.get("checkpoints")
            for key in sorted(group) if isinstance(group, h5py.Group) else []:
                attrs = group[key].attrs
                wrote = str(plain(attrs.get("command")) or default)
                stored = (str(plain(attrs.get("model_path", ""))), str(plain(attrs.get("model_sha256", ""))))
                if wrote != command or not any(_same_model(stored, model, shas) for model in models):
                    foreign.append(f"{wrote} of {stored[0]}")
    except (OSError, KeyError, ValueError) as exc:
        return [f"an unreadable store ({exc})"]
    return foreign


def _same_model(stored: tuple[str, str], model: Path, shas: dict[Path, str | None]) -> bool:
    """True when a checkpoint's (model_path, model_sha256) names `model`: the same path, or the same file bytes."""
    path, sha = stored
    if path and (path == str(model) or _same_file(Path(path), model)):
        return True
    if not sha or not model.is_file():
        return False
    if model not in shas:
        from satcli.models import file_sha256

        shas[model] = file_sha256(model)
    return shas[model] == sha


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (also through links); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
