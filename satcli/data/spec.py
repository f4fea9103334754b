"""Turn a data spec string into an opened DataSource."""

from __future__ import annotations

from pathlib import Path

from satcli.data.arrays import ARRAY_SUFFIXES, _open_arrays
from satcli.data.builtin import DIGITS_RAW, _open_digits
from satcli.data.folder import _open_folder
from satcli.data.hf import HF_PREFIX, is_saved_dataset, open_hub_dataset, open_saved_dataset
from satcli.data.source import DataOptions, DataSource, _check_options
from satcli.data.tables import TABLE_SUFFIXES, open_table
from satcli.data.vision import _open_cifar, _open_mnist, _open_svhn
from satcli.errors import SatcliError

ACCEPTED_SPECS = (
    "digits, cifar10, cifar100, mnist, fashion-mnist, svhn, digits:raw, folder:PATH, an array file PATH.npz, "
    "PATH.pt, PATH.h5 or PATH.hdf5, a table PATH.parquet, PATH.jsonl or PATH.csv, a data set folder "
    "written by save_to_disk, or hf:NAME[:SPLIT]"
)


def open_data(spec: str, options: DataOptions) -> DataSource:
    """Open a data spec; raises SatcliError for an unknown spec, a bad option or missing/unreadable files."""
    _check_options(options)
    text = spec.strip()
    name = text.lower()
    if name == "digits":
        return _open_digits(spec, options)
    if name == DIGITS_RAW:
        return _open_digits(spec, options, raw=True)
    if name in ("cifar10", "cifar100"):
        return _open_cifar(spec, name, options)
    if name in ("mnist", "fashion-mnist"):
        return _open_mnist(spec, name, options)
    if name == "svhn":
        return _open_svhn(spec, options)
    if name.startswith("folder:"):
        return _open_folder(spec, text[len("folder:") :], options)
    if Path(name).suffix in ARRAY_SUFFIXES:
        return _open_arrays(spec, Path(text).expanduser(), options)
    if name.startswith(HF_PREFIX):
        return open_hub_dataset(spec, text[len(HF_PREFIX) :], options)
    if Path(name).suffix in TABLE_SUFFIXES:
        return open_table(spec, Path(text).expanduser(), options)
    if text and is_saved_dataset(Path(text).expanduser()):
        return open_saved_dataset(spec, Path(text).expanduser(), options)
    hint = f" (for an image folder use folder:{text})" if text and Path(text).expanduser().is_dir() else ""
    raise SatcliError(f"unknown data spec {spec!r}{hint}; accepted: {ACCEPTED_SPECS}")
