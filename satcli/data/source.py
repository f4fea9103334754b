"""Data options and the opened data source: a deterministic stream of batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from satcli.errors import SatcliError


@dataclass(frozen=True)
class DataOptions:
    """How to open a data spec: where its files live, which part of it to use and how to batch it."""

    root: Path | None = None
    download: bool = False
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 256
    workers: int = 0
    image_size: int | None = None
    seed: int = 0


def default_data_root() -> Path:
    """Where torchvision data sets live unless --data-root says otherwise: $SATCLI_DATA_ROOT or a cache dir."""
    env = os.environ.get("SATCLI_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "satcli" / "data"


@dataclass
class DataSource:
    """An opened data spec: a deterministic stream of (x, y) batches, optionally cached in memory."""

    spec: str
    description: str
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]]
    num_samples: int
    sample_shape: tuple[int, ...]
    has_labels: bool
    options: DataOptions
    _cache: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches in dataset order; from the in-memory copy once materialize() has run."""
        step = self.options.batch_size
        if self._cache is not None:
            xs, ys = self._cache
            for start in range(0, self.num_samples, step):
                # Copies, so a model that edits its input in place cannot corrupt the cache for the next one.
                yield xs[start : start + step].clone(), ys[start : start + step].clone()
            return
        loader = DataLoader(self.dataset, batch_size=step, shuffle=False, num_workers=self.options.workers)
        try:
            # default_collate returns [x, y] lists; the contract is tuples.
            yield from ((x, y) for x, y in loader)
        except SatcliError as exc:
            # A worker's error comes back in a reference cycle with its traceback, which would keep the
            # loader's workers alive until a garbage collection that then stalls for seconds; dropping the
            # traceback frees them now.
            exc.__traceback__ = None
            raise SatcliError(_last_line(str(exc))) from None

    def materialize(self) -> None:
        """Decode every sample once into two contiguous tensors, so scoring many checkpoints decodes once."""
        if self._cache is not None:
            return
        xs = torch.empty((self.num_samples, *self.sample_shape), dtype=torch.float32)
        ys = torch.empty((self.num_samples,), dtype=torch.int64)
        start = 0
        for x, y in self.batches():
            xs[start : start + len(x)] = x
            ys[start : start + len(y)] = y
            start += len(x)
        self._cache = (xs, ys)


def _check_options(options: DataOptions) -> None:
    """Reject option values that cannot describe any data, before touching files."""
    if options.batch_size <= 0:
        raise SatcliError(f"--batch-size must be a positive integer, got {options.batch_size}")
    if options.workers < 0:
        raise SatcliError(f"--workers must be 0 or more, got {options.workers}")
    if options.max_samples is not None and options.max_samples <= 0:
        raise SatcliError(f"--max-samples must be a positive integer, got {options.max_samples}")
    if options.image_size is not None and options.image_size <= 0:
        raise SatcliError(f"--image-size must be a positive integer, got {options.image_size}")


def _check_split(name: str, split: str, valid: Sequence[str]) -> None:
    if split not in valid:
        raise SatcliError(f"{name} has no split {split!r}; valid splits: {', '.join(valid)}")


def _last_line(message: str) -> str:
    """The original one-line message of an error that a DataLoader worker re-raised with its traceback."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else message
    prefix = f"{SatcliError.__module__}.{SatcliError.__name__}: "
    return last[len(prefix) :] if last.startswith(prefix) else last
