"""Data options and the opened data source: a deterministic stream of batches."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from satcli.errors import SatcliError


@dataclass(frozen=True)
class DataOptions:
    """How to open a data spec: where its files live, which part of it to use and how to batch it.

    The last group only matters for tables and Hugging Face data sets (`datasets` folders, `hf:NAME[:SPLIT]`,
    .parquet / .jsonl / .csv):

    - `input_column`: the column fed to the model; default the first of text, image, img, pixel_values,
      input_ids that exists. Two text columns separated by a comma ("premise,hypothesis") are a text pair.
    - `label_column`: default label or labels when present, else the data is unlabeled.
    - `tokenizer`: a tokenizer object or a path (model directory or tokenizer folder); needed for text.
    - `image_processor`: an image processor object or a path; images then go through it instead of the
      usual to-[0, 1], resize, ImageNet-normalize transform.
    - `max_length`: tokens per text (longer ones are truncated); default the tokenizer's model_max_length,
      capped at 512. Padding is per batch, on the tokenizer's configured side.
    - `trust_remote_code`: allow a tokenizer or processor given as a path to run code shipped with it.
    - `vocab_size`: the model's embedding rows (a Hugging Face config's vocab_size), so a tokenizer much
      smaller than the model's vocabulary is refused instead of feeding it the wrong ids.
    """

    root: Path | None = None
    download: bool = False
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 256
    workers: int = 0
    image_size: int | None = None
    seed: int = 0
    input_column: str | None = None
    label_column: str | None = None
    tokenizer: Any = None
    image_processor: Any = None
    max_length: int | None = None
    trust_remote_code: bool = False
    vocab_size: int | None = None
    # Repeat the channel of 1-channel image batches (N, 1, H, W) to 3, for models trained on RGB.
    grayscale_to_rgb: bool = False


@dataclass
class Batch:
    """One batch of model inputs, as DataSource.iter_batches() yields it.

    - `inputs`: a (B, ...) float tensor to call `module(inputs)` with, or, for text, a dict of (B, T) tensors
      (input_ids, attention_mask, token_type_ids, ...) to call `module(**inputs)` with.
    - `labels`: (B,) int64 class indices, or None for unlabeled data (string labels are coded by their
      position in the source's sorted `class_names`).
    - `mask`: for text, the (B, T) bool mask of real (non-padding) tokens, the same positions as
      inputs["attention_mask"]; per-token outputs (B, T, d) are pooled over these positions only. None for
      inputs without a sequence axis.
    """

    inputs: torch.Tensor | dict[str, torch.Tensor]
    labels: torch.Tensor | None
    mask: torch.Tensor | None = None

    def clone(self) -> Batch:
        """A deep copy, so a model that edits its input in place cannot corrupt a cached batch."""
        inputs = (
            {key: value.clone() for key, value in self.inputs.items()}
            if isinstance(self.inputs, dict)
            else self.inputs.clone()
        )
        return Batch(
            inputs,
            None if self.labels is None else self.labels.clone(),
            None if self.mask is None else self.mask.clone(),
        )

    def __len__(self) -> int:
        first = next(iter(self.inputs.values())) if isinstance(self.inputs, dict) else self.inputs
        return int(first.shape[0])


def default_data_root() -> Path:
    """Where torchvision data sets live unless --data-root says otherwise: $SATCLI_DATA_ROOT or a cache dir."""
    env = os.environ.get("SATCLI_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "satcli" / "data"


@dataclass
class DataSource:
    """An opened data spec: a deterministic stream of batches, optionally cached in memory.

    Sources of fixed-shape tensors (collate None) hold a dataset of (x, y) items. Table and Hugging Face
    sources hold a dataset of raw rows and a `collate` that turns a list of rows into a Batch (tokenizing
    text, padding per batch); their `sample_shape` is the shape of the first sample's main input (for
    text, its token count) and `is_text` says whether inputs are dicts of token tensors.
    """

    spec: str
    description: str
    dataset: Dataset[Any]
    num_samples: int
    sample_shape: tuple[int, ...]
    has_labels: bool
    options: DataOptions
    collate: Callable[[list[Any]], Batch] | None = None
    class_names: tuple[str, ...] | None = None
    is_text: bool = False
    notes: tuple[str, ...] = ()  # how the data were prepared where it is not the usual way (e.g. eos as padding)
    _cache: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)
    _batch_cache: list[Batch] | None = field(default=None, init=False, repr=False, compare=False)

    def iter_batches(self) -> Iterator[Batch]:
        """Yield Batch objects in dataset order (labels None when the data is unlabeled)."""
        if not self.options.grayscale_to_rgb:
            yield from self._iter_batches()
            return
        for batch in self._iter_batches():
            x = batch.inputs
            if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] == 1:
                batch = Batch(x.expand(-1, 3, -1, -1).contiguous(), batch.labels, batch.mask)
            yield batch

    def _iter_batches(self) -> Iterator[Batch]:
        if self.collate is None:
            for x, y in self.batches():
                yield Batch(x, y if self.has_labels else None)
            return
        if self._batch_cache is not None:
            yield from (batch.clone() for batch in self._batch_cache)
            return
        loader = DataLoader(
            self.dataset,
            batch_size=self.options.batch_size,
            shuffle=False,
            num_workers=self.options.workers,
            collate_fn=self.collate,
        )
        yield from _one_line_errors(loader)

    def batches(self) -> Iterator[tuple[Any, torch.Tensor]]:
        """Yield (x, y) batches in dataset order; from the in-memory copy once materialize() has run.

        y is -1 for unlabeled data. For text sources x is the dict of token tensors (see Batch).
        """
        if self.collate is not None:
            for batch in self.iter_batches():
                labels = batch.labels
                yield batch.inputs, torch.full((len(batch),), -1, dtype=torch.int64) if labels is None else labels
            return
        step = self.options.batch_size
        if self._cache is not None:
            xs, ys = self._cache
            for start in range(0, self.num_samples, step):
                # Copies, so a model that edits its input in place cannot corrupt the cache for the next one.
                yield xs[start : start + step].clone(), ys[start : start + step].clone()
            return
        loader = DataLoader(self.dataset, batch_size=step, shuffle=False, num_workers=self.options.workers)
        # default_collate returns [x, y] lists; the contract is tuples.
        yield from ((x, y) for x, y in _one_line_errors(loader))

    def materialize(self) -> None:
        """Decode every sample once into two contiguous tensors, so scoring many checkpoints decodes once.

        Sources with a collate keep their list of collated batches instead.
        """
        if self._cache is not None or self._batch_cache is not None:
            return
        if self.collate is not None:
            self._batch_cache = list(self.iter_batches())
            return
        xs = torch.empty((self.num_samples, *self.sample_shape), dtype=torch.float32)
        ys = torch.empty((self.num_samples,), dtype=torch.int64)
        start = 0
        for x, y in self.batches():
            xs[start : start + len(x)] = x
            ys[start : start + len(y)] = y
            start += len(x)
        self._cache = (xs, ys)


def _one_line_errors(loader: DataLoader[Any]) -> Iterator[Any]:
    """Iterate a loader, turning an error re-raised from a worker back into its one-line message."""
    try:
        yield from loader
    except SatcliError as exc:
        # A worker's error comes back in a reference cycle with its traceback, which would keep the
        # loader's workers alive until a garbage collection that then stalls for seconds; dropping the
        # traceback frees them now.
        exc.__traceback__ = None
        raise type(exc)(_last_line(str(exc))) from None  # the same class: a DataError stays the data's


def _check_options(options: DataOptions) -> None:
    """Reject option values that cannot describe any data, before touching files."""
    if options.batch_size <= 0:
        raise SatcliError(f"the batch size must be a positive integer, got {options.batch_size}")
    if options.workers < 0:
        raise SatcliError(f"the number of data-loading workers must be 0 or more, got {options.workers}")
    if options.max_samples is not None and options.max_samples <= 0:
        raise SatcliError(f"the number of samples to use must be a positive integer, got {options.max_samples}")
    if options.image_size is not None and options.image_size <= 0:
        raise SatcliError(f"the image size must be a positive integer, got {options.image_size}")
    if options.max_length is not None and options.max_length <= 0:
        raise SatcliError(f"the maximum text length must be a positive integer, got {options.max_length}")


def _check_split(name: str, split: str, valid: Sequence[str]) -> None:
    if split not in valid:
        raise SatcliError(f"{name} has no split {split!r}; valid splits: {', '.join(valid)}")


def _last_line(message: str) -> str:
    """The original one-line message of an error that a DataLoader worker re-raised with its traceback."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else message
    # The worker's traceback ends in "satcli.errors.DataError: ..." (or another SatcliError class).
    return re.sub(rf"^{re.escape(SatcliError.__module__)}\.\w+: ", "", last)
