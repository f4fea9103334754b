"""Adapters from what a Python user holds (a module, an iterable of batches) to what the engine reads."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from satcli.core.verdict import Thresholds
from satcli.data import Batch
from satcli.engine.options import AnalysisOptions
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel
from satcli.taps import Reduction

PYTHON_DATA = "python"


def module_sha256(module: nn.Module) -> str:
    """sha256 over the module's state dict (names, dtypes, shapes, values): the identity of its weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def module_device(module: nn.Module) -> torch.device:
    """Where the module's first parameter (or buffer) lives; CPU for a module without any."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


def loaded_module(module: nn.Module, device: torch.device | str | None = None) -> LoadedModel:
    """A live module as the engine's LoadedModel (moved to `device` when one is given)."""
    if not isinstance(module, nn.Module):
        raise SatcliError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if device is not None:
        module.to(device)
    return LoadedModel(
        path=Path(f"<{type(module).__name__}>"),
        sha256=module_sha256(module),
        format="module",
        module=module,
        device=torch.device(device) if device is not None else module_device(module),
        arch=None,
        input_shape=None,
    )


def as_batch(item: object) -> Batch:
    """A user batch as the engine's Batch: a tensor, an (inputs, labels) pair or a dict of named inputs.

    A dict's 1-D integer `labels` entry becomes the labels; its `attention_mask` marks the real tokens.
    """
    if isinstance(item, Batch):
        return item
    if isinstance(item, torch.Tensor):
        return Batch(item, None)
    if isinstance(item, dict):
        labels = item.get("labels")
        one_per_input = isinstance(labels, torch.Tensor) and labels.ndim == 1 and not labels.is_floating_point()
        mask = item.get("attention_mask")
        return Batch(
            dict(item),
            labels.long() if one_per_input else None,  # type: ignore[union-attr]
            mask.bool() if isinstance(mask, torch.Tensor) else None,
        )
    if isinstance(item, (tuple, list)) and len(item) == 2:
        inputs, labels = item
        if isinstance(labels, torch.Tensor) and labels.ndim == 1 and not labels.is_floating_point():
            return Batch(as_batch(inputs).inputs, labels.long())
        return Batch(as_batch(inputs).inputs, None)
    raise DataError(
        f"a batch must be a tensor, an (inputs, labels) pair or a dict of tensors, got {type(item).__name__}"
    )


class PythonBatches:
    """An iterable of user batches as a one-pass data source for the engine (labels known from the first batch)."""

    spec = PYTHON_DATA
    description = "batches from Python"
    notes: tuple[str, ...] = ()  # nothing prepared here: the batches are used as given

    def __init__(self, batches: Iterable[object]) -> None:
        self._items: Iterator[object] = iter(batches)
        try:
            self._first: Batch | None = as_batch(next(self._items))
        except StopIteration:
            raise DataError("no batches to analyze") from None
        self.has_labels = self._first.labels is not None

    def iter_batches(self) -> Iterator[Batch]:
        """Yield each batch once (the iterable is consumed)."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        for item in self._items:
            yield as_batch(item)


def analysis_options(
    delta: float,
    conv_method: str,
    layers: Sequence[str] | None,
    sequence_method: str = "mean",
    *,
    exclude: Sequence[str] | None = None,
    classes: bool | None = None,
    analyses: Sequence[str | tuple[str, object]] = (),
) -> AnalysisOptions:
    """The engine options the Python API's and the Monitor's keyword arguments stand for (the CLI's defaults
    otherwise); no activations are stored. `analyses`: as the CLI's --analysis (`NAME[:opt=value,...]`)."""
    return AnalysisOptions(
        reduction=Reduction(conv_method, sequence_method),
        include=tuple(layers or ()),
        exclude=tuple(exclude or ()),
        thresholds=Thresholds(delta=delta),
        store_activations=False,
        classes=classes,
        analyses=tuple(analyses),
    )
