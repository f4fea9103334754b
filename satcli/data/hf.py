"""Hugging Face data sets: folders written by `save_to_disk`, and `hf:NAME[:SPLIT]` from the local cache.

`hf:NAME` is read from the local Hugging Face cache only (a hub snapshot of the data set's files, or a copy
`datasets` prepared earlier); the network is used only when the options allow downloading.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from satcli.data.common import _one_line
from satcli.data.rows import open_rows
from satcli.data.source import DataOptions, DataSource
from satcli.errors import SatcliError

HF_PREFIX = "hf:"


def is_saved_dataset(path: Path) -> bool:
    """True for a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk."""
    if not path.is_dir():
        return False
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def open_saved_dataset(spec: str, path: Path, options: DataOptions, split: str | None = None) -> DataSource:
    """A save_to_disk folder; a DatasetDict is read at `split` (default: the options' split)."""
    datasets = _datasets()
    with quiet_datasets(datasets):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise SatcliError(f"cannot read {path} as a saved data set: {_one_line(exc)}") from None
    table, split_name = pick_split(str(path), loaded, split or options.split, single=split is None)
    return open_rows(spec, str(path), table, options, [split_name] if split_name else [])


def open_hub_dataset(spec: str, text: str, options: DataOptions) -> DataSource:
    """`hf:NAME[:SPLIT]` (or `hf:PATH[:SPLIT]` for a saved folder); SPLIT defaults to the options' split."""
    name, _, split = text.strip().partition(":")
    name = name.strip()
    split = split.strip() or options.split
    if not name:
        raise SatcliError("hf: needs a data set name, e.g. hf:imdb or hf:glue:validation")
    local = Path(name).expanduser()
    if local.exists():
        if not is_saved_dataset(local):
            raise SatcliError(f"{local} is not a data set folder written by save_to_disk")
        return open_saved_dataset(spec, local, options, split)
    datasets = _datasets()
    with quiet_datasets(datasets):
        loaded = _load_from_cache(datasets, name, split, options.download)
    table, split_name = pick_split(f"hf:{name}", loaded, split, single=False)
    return open_rows(spec, f"hf:{name}", table, options, [split_name] if split_name else [])


def pick_split(name: str, loaded: Any, split: str, *, single: bool) -> tuple[Any, str | None]:
    """The Dataset for `split` from a Dataset or DatasetDict, or an error listing the valid splits.

    A plain Dataset has no splits: it is used as is when `single` (no split was asked for by name).
    """
    if hasattr(loaded, "keys") and callable(loaded.keys):
        valid = list(loaded.keys())
        if split not in valid:
            raise SatcliError(f"{name} has no split {split!r}; valid splits: {', '.join(valid)}")
        return loaded[split], split
    if single or split == DataOptions.split:
        return loaded, None
    raise SatcliError(f"{name} has no splits; drop the split {split!r}")


def _load_from_cache(datasets: Any, name: str, split: str, download: bool) -> Any:
    """The data set from a hub snapshot or datasets' prepared cache; downloaded only when allowed."""
    how = f"download it with `hf download --repo-type dataset {name}` or allow the download"
    if download:
        try:
            return {split: datasets.load_dataset(name, split=split)}
        except Exception as exc:
            raise SatcliError(f"downloading data set {name} failed: {_one_line(exc)}") from None
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(name, repo_type="dataset", local_files_only=True)
    except Exception:
        folder = None
    with _offline(datasets):
        try:
            return datasets.load_dataset(str(folder) if folder else name)
        except Exception as exc:
            if folder is not None:
                raise SatcliError(f"cannot read data set {name} from {folder}: {_one_line(exc)}") from None
    from huggingface_hub import constants

    raise SatcliError(f"data set {name} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); {how}")


def _datasets() -> Any:
    from satcli.models.hf import require

    require("huggingface_hub", "hf")
    return require("datasets", "hf")


@contextlib.contextmanager
def _offline(datasets: Any) -> Iterator[None]:
    """No network for the duration: datasets and huggingface_hub read these flags at call time."""
    from huggingface_hub import constants

    saved = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


@contextlib.contextmanager
def quiet_datasets(datasets: Any) -> Iterator[None]:
    """No progress bars or warnings from datasets on the user's terminal."""
    logging = datasets.utils.logging
    level = logging.get_verbosity()
    bars = datasets.utils.is_progress_bar_enabled()
    logging.set_verbosity_error()
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            datasets.utils.enable_progress_bars()
