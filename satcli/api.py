"""The Python API: score a live module on an iterable of batches, with the CLI's exact numbers.

import satcli
result = satcli.analyze_model(model, loader)   # tensors, (inputs, labels) pairs or dicts
result.to_dict()                               # the CLI's JSON document for one checkpoint
print(result.table())                          # the CLI's table, as text
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from satcli.engine.sweep import score_checkpoint
from satcli.training.adapters import PythonBatches, analysis_options, loaded_module
from satcli.training.monitor import Monitor
from satcli.training.result import Result

__all__ = ["Monitor", "Result", "analyze_model"]


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
    analyses: Sequence[str] = (),
    store: str | Path | None = None,
) -> Result:
    """Score `module` on `batches` (tensors, (inputs, labels) pairs, or dicts of named inputs for Hugging Face
    style models): per-layer k and saturation, the average and the verdict, as `satcli analyze` computes them.

    The module runs in eval mode without gradients and is left in the mode it had. `layers`: name globs of
    the layers to track (default: all). `analyses`: analyses to run besides the default ones, as the CLI's
    ``--analysis NAME[:opt=value,...]`` (``satcli analyses`` lists them). `store`: add the checkpoint
    (statistics only) to this HDF5 store.
    """
    options = analysis_options(delta, conv_method, layers, sequence_method, classes=classes, analyses=analyses)
    target = None if store is None else Path(store)
    loaded = loaded_module(module, device)
    result = score_checkpoint(loaded, PythonBatches(batches), options, target, append=True, attrs={"command": "api"})  # type: ignore[arg-type]
    return Result(result)
