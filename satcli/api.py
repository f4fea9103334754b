"""The Python API: score a live module on an iterable of batches, with the CLI's exact numbers.

import satcli
result = satcli.analyze_model(model, loader)   # tensors, (inputs, labels) pairs or dicts
result.to_dict()                               # the CLI's JSON document for one checkpoint
result.table()                                 # the CLI's table
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from satcli.core.verdict import Thresholds
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import Observer, analyze
from satcli.store.observer import StoreObserver
from satcli.store.writer import StoreWriter
from satcli.taps import Reduction
from satcli.training.adapters import PythonBatches, loaded_module
from satcli.training.monitor import Monitor
from satcli.training.result import Result

__all__ = ["Monitor", "Result", "analyze_model"]


def analysis_options(
    delta: float,
    conv_method: str,
    layers: Sequence[str] | None,
    sequence_method: str = "mean",
    classes: bool | None = None,
    store_activations: bool = False,
) -> AnalysisOptions:
    """The engine options the API's keyword arguments stand for (the CLI's defaults otherwise)."""
    return AnalysisOptions(
        reduction=Reduction(conv_method, sequence_method),
        include=tuple(layers or ()),
        thresholds=Thresholds(delta=delta),
        store_activations=store_activations,
        classes=classes,
    )


def analyze_model(
    module: nn.Module,
    batches: Iterable[object],
    *,
    delta: float = 0.99,
    conv_method: str = "mean",
    layers: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    sequence_method: str = "mean",
    classes: bool | None = None,
    store: str | Path | None = None,
) -> Result:
    """Score `module` on `batches` (tensors, (inputs, labels) pairs, or dicts of named inputs for Hugging Face
    style models): per-layer k and saturation, the average and the verdict, as `satcli analyze` computes them.

    The module runs in eval mode without gradients and is left in the mode it had. `layers`: name globs of
    the layers to track (default: all). `store`: add the checkpoint (statistics only) to this HDF5 store.
    """
    options = analysis_options(delta, conv_method, layers, sequence_method, classes)
    loaded = loaded_module(module, device)
    data = PythonBatches(batches)
    if store is None:
        return Result(analyze(loaded, data, options))  # type: ignore[arg-type]
    with StoreWriter(Path(store), {"command": "api"}, append=True) as writer:
        observers: list[Observer] = [StoreObserver.of(writer, options)]
        result = analyze(loaded, data, options, observers)  # type: ignore[arg-type]
    return Result(replace(result, store=str(store)))
