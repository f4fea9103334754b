"""Saturation as scalars for the loggers a training run already has (TensorBoard, CSV, W&B, ...).

One dict per checkpoint, the same for the Lightning callback (pl_module.log_dict) and for a Monitor's
SummaryWriter: satcli/saturation/<layer>, satcli/k/<layer>, satcli/average_saturation and, when class
labels were seen, satcli/between_share/<layer>. A value the result does not have (n/a) is left out.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from satcli.core.results import CheckpointResult
from satcli.render.text import between_share

PREFIX = "satcli"


class ScalarWriter(Protocol):
    """What a Monitor needs of its writer: torch.utils.tensorboard.SummaryWriter has it."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> Any: ...


def _finite(value: float | int | None) -> bool:
    return value is not None and math.isfinite(value)


def scalar_metrics(result: CheckpointResult) -> dict[str, float]:
    """Per-layer saturation, k and between-class share, and the average saturation, keyed for a logger."""
    metrics: dict[str, float] = {}
    for layer in result.layers:
        if _finite(layer.saturation):
            metrics[f"{PREFIX}/saturation/{layer.name}"] = float(layer.saturation)  # type: ignore[arg-type]
        if layer.k is not None:
            metrics[f"{PREFIX}/k/{layer.name}"] = float(layer.k)
        share = between_share(layer)
        if _finite(share):
            metrics[f"{PREFIX}/between_share/{layer.name}"] = float(share)  # type: ignore[arg-type]
    if _finite(result.verdict.average):
        metrics[f"{PREFIX}/average_saturation"] = float(result.verdict.average)  # type: ignore[arg-type]
    return metrics


def write_scalars(writer: ScalarWriter, result: CheckpointResult, step: int | None) -> None:
    """Every scalar_metrics value as writer.add_scalar(key, value, step)."""
    for key, value in scalar_metrics(result).items():
        writer.add_scalar(key, value, step)
