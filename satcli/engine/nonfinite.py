"""Non-finite inputs and layer outputs: count them and leave them out of every statistic, or refuse them.

One NaN input would otherwise make every layer's covariance NaN (every layer `non-finite`, nothing
measured). Inputs are filtered per input before the forward pass; a layer output that is non-finite for
finite inputs (an overflow inside the model) is filtered per sample in the engine's sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from satcli.core.state import LayerStats
from satcli.data import Batch
from satcli.errors import DataError, SatcliError
from satcli.taps.layers import Inputs

SKIP = "skip"
FAIL = "fail"
POLICIES = (SKIP, FAIL)


@dataclass
class NonFiniteCount:
    """What a run left out: inputs with a NaN/inf value, and per layer the samples with a NaN/inf output."""

    policy: str = SKIP
    inputs: int = 0
    layer_samples: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise SatcliError(f"the non-finite policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, as the store and the JSON output record it."""
        return {"policy": self.policy, "inputs_skipped": self.inputs, "layer_samples_skipped": dict(self.layer_samples)}

    def finite_batch(self, batch: Batch, seen_before: int, data: str) -> Batch | None:
        """The batch without its inputs that hold a non-finite value; None when none is left.

        `seen_before` (inputs of earlier batches) and `data` only make the error name the input.
        """
        keep = self.finite_inputs(batch.inputs, seen_before, data)
        if keep is None:
            return batch
        if not bool(keep.any()):
            return None
        inputs = batch.inputs
        kept = {k: v[keep] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[keep]
        labels = None if batch.labels is None else batch.labels[keep]
        mask = None if batch.mask is None else batch.mask[keep]
        return Batch(kept, labels, mask)

    def finite_inputs(self, inputs: Inputs, seen_before: int = 0, data: str = "the data") -> torch.Tensor | None:
        """(B,) bool: the inputs without a non-finite value (None when all are, no copy); the others are counted,
        or refused under the fail policy (`seen_before` and `data` only make the error name the input)."""
        keep = finite_rows(inputs)
        if keep is None:
            return None
        if self.policy == FAIL:
            first = seen_before + int(torch.nonzero(~keep)[0, 0])
            raise DataError(f"{data}: input {first} holds non-finite values (NaN or inf)")
        self.inputs += int((~keep).sum())
        return keep

    def finite_samples(
        self, layer: str, samples: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """A layer's samples (and their labels and input indices) without the non-finite ones; unchanged (no
        copy) when all are finite."""
        if bool(torch.isfinite(samples.sum())):
            return samples, labels, index
        rows = samples.reshape(-1, samples.shape[-1])
        keep = torch.isfinite(rows).all(dim=1)
        dropped = int((~keep).sum())
        if dropped == 0:  # the sum overflowed, every value is finite
            return samples, labels, index
        if self.policy == FAIL:
            raise DataError(f"layer '{layer}' gave non-finite outputs (NaN or inf) for finite inputs")
        self.layer_samples[layer] = self.layer_samples.get(layer, 0) + dropped
        kept_index = None if index is None else index.reshape(-1)[keep]
        return rows[keep], None if labels is None else labels.reshape(-1)[keep], kept_index


def finite_rows(inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor | None:
    """(B,) bool: inputs whose every floating value is finite; None when all are (the common case, no copy)."""
    tensors = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
    keep: torch.Tensor | None = None
    for t in tensors:
        if not t.is_floating_point() or t.ndim == 0 or bool(torch.isfinite(t.sum())):
            continue
        rows = torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
        keep = rows if keep is None else keep & rows
    if keep is None or bool(keep.all()):
        return None
    return keep


def flag_unmeasured(stats: dict[str, LayerStats], count: NonFiniteCount) -> dict[str, LayerStats]:
    """Layers whose every sample was non-finite keep the `non-finite` flag (nothing was measured)."""
    return {
        name: replace(s, nonfinite=True) if s.samples == 0 and name in count.layer_samples else s
        for name, s in stats.items()
    }
