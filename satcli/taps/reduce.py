"""How a layer output becomes samples of a d-dimensional vector (docs/method.md sec. 1 table)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from satcli.errors import SatcliError
from satcli.taps.layers import CONV, DENSE, Layer

CONV_METHODS = ("mean", "max", "channelwise")


SEQUENCE_METHODS = ("mean", "last", "tokens")


@dataclass(frozen=True)
class Reduction:
    """How a layer output becomes samples of a d-dimensional vector (docs/method.md sec. 1 table)."""

    conv_method: str = "mean"
    sequence_method: str = "mean"

    def __post_init__(self) -> None:
        if self.conv_method not in CONV_METHODS:
            raise SatcliError(f"the conv reduction must be one of {', '.join(CONV_METHODS)}, got {self.conv_method!r}")
        if self.sequence_method not in SEQUENCE_METHODS:
            raise SatcliError(
                f"the sequence reduction must be one of {', '.join(SEQUENCE_METHODS)}, got {self.sequence_method!r}"
            )

    def name_for(self, layer: Layer, output_ndim: int) -> str:
        """The reduction applied to this layer's output ('none' for plain (B, d) outputs)."""
        if layer.kind == CONV:
            return self.conv_method
        return "none" if output_ndim == 2 and layer.kind == DENSE else self.sequence_method


def as_sequence(t: torch.Tensor, layer: Layer) -> torch.Tensor:
    """A dense or recurrent output of 3+ dims as (B, T, d), batch first (RNNs and attention may be (T, B, d))."""
    if not layer.batch_first:
        t = t.transpose(0, 1)
    return t.reshape(t.shape[0], -1, t.shape[-1])


def reduce_output(t: torch.Tensor, layer: Layer, reduction: Reduction) -> torch.Tensor:
    """Turn one layer output into (samples, d) rows for the covariance."""
    samples = sample_view(t, layer, reduction)
    return samples.reshape(-1, samples.shape[-1])


def sample_view(t: torch.Tensor, layer: Layer, reduction: Reduction, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The covariance samples of one output as a (B, ..., d) tensor, every leading index one sample.

    Same samples as ``reduce_output`` without its final reshape, so channelwise and token samples stay
    views of the output (channels-last for convolutions) instead of being copied. With a (B, T) `mask` of
    real tokens and a (B, T, d) output, padding never enters a sample (docs/method.md sec. 8): `mean` averages
    the real tokens, `last` takes the last real one, and `tokens` gives an (N_real, d) tensor.
    """
    if layer.kind == CONV:
        if t.ndim < 3:
            raise SatcliError(f"layer '{layer.name}' ({layer.type}) gave an unbatched output of shape {tuple(t.shape)}")
        spatial = tuple(range(2, t.ndim))
        if reduction.conv_method == "mean":
            return t.mean(dim=spatial)
        if reduction.conv_method == "max":
            return t.amax(dim=spatial)
        return t.movedim(1, -1)
    if t.ndim == 2 and layer.kind == DENSE:
        return t
    if t.ndim < 2:
        raise SatcliError(f"layer '{layer.name}' ({layer.type}) gave an unbatched output of shape {tuple(t.shape)}")
    seq = as_sequence(t, layer)
    if mask is not None and mask.shape == seq.shape[:2]:
        mask = mask.to(seq.device, torch.bool)
        if not bool(mask.all()):  # without padding the output's own view serves (no copy of every token)
            return _masked(seq, mask, reduction.sequence_method)
    if reduction.sequence_method == "mean":
        return seq.mean(dim=1)
    if reduction.sequence_method == "last":
        return seq[:, -1]
    return seq


def position_blocks(
    t: torch.Tensor, layer: Layer, mask: torch.Tensor | None = None, values: int = 1 << 19
) -> Iterator[torch.Tensor]:
    """Every position / real token of one output as samples (B, ..., d), like ``sample_view`` with channelwise and
    tokens, but in blocks of inputs of at most `values` values where the real tokens must be copied out of a
    padded batch: each copy is small and reused by the allocator instead of one of the whole output (tens of MB
    for a GPT-2 MLP layer, page-faulted afresh per layer and batch). Views (no padding) come whole."""
    every = Reduction(conv_method="channelwise", sequence_method="tokens")
    seq = None if layer.kind == CONV or mask is None or t.ndim < 3 else as_sequence(t, layer)
    if seq is None or mask is None or mask.shape != seq.shape[:2] or bool(mask.all()):
        yield sample_view(t, layer, every, mask)
        return
    mask = mask.to(seq.device, torch.bool)
    step = max(1, values // max(1, seq[0].numel()))
    for start in range(0, seq.shape[0], step):
        yield seq[start : start + step][mask[start : start + step]]


def _masked(seq: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Samples of a (B, T, d) output from its real tokens only."""
    if method == "tokens":
        return seq[mask]
    counts = mask.sum(dim=1)
    if method == "last":
        # The last real token of each row, wherever the padding is (left or right).
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask, positions, -1).amax(dim=1).clamp(min=0)
        return seq[torch.arange(seq.shape[0], device=seq.device), last]
    # (B, 1, T) @ (B, T, d): one batched GEMV on the output as it lies (einsum permuted it to (B, d, T) first).
    weights = (mask.to(seq.dtype) / counts.clamp(min=1).to(seq.dtype)[:, None])[:, None, :]
    pooled = torch.bmm(weights, seq).squeeze(1)
    if not bool(torch.isfinite(pooled).all()):  # a NaN/inf padding token would enter through its 0 weight
        pooled = torch.bmm(weights, seq.masked_fill(~mask[..., None], 0)).squeeze(1)
    return pooled


def sample_labels(
    labels: torch.Tensor | None, samples: torch.Tensor, batch: int, mask: torch.Tensor | None = None
) -> torch.Tensor | None:
    """One label per sample (flattened like ``samples.reshape(-1, d)``): each sample carries its input's."""
    if labels is None:
        return None
    if samples.shape[0] != batch and mask is not None:  # real tokens of every input, concatenated
        return labels.repeat_interleave(mask.sum(dim=1).to(labels.device))
    per_input = samples.shape[1:-1].numel()
    return labels.reshape(-1, 1).expand(-1, per_input).reshape(-1)


def input_rows(t: torch.Tensor, samples: torch.Tensor, layer: Layer, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One row per input for the store from ``sample_view``'s samples: themselves, or the mean of an input's
    samples (real tokens only under a mask). Always a new tensor, never a view of the output (which the model
    may still change in place)."""
    tokens = mask is not None and layer.kind != CONV and t.ndim >= 3
    if tokens and samples.shape[0] != t.shape[0]:  # every real token a sample: their mean per input
        rows = sample_view(t, layer, Reduction(sequence_method="mean"), mask)
    elif samples.ndim == 2:
        rows = samples
    elif layer.kind == CONV:
        rows = t.mean(dim=tuple(range(2, t.ndim)))  # channelwise: pool the contiguous NCHW output directly
    else:
        rows = samples.mean(dim=tuple(range(1, samples.ndim - 1)))
    if rows.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        rows = rows.clone()
    return rows


def pooled_per_input(t: torch.Tensor, samples: torch.Tensor, layer: Layer, batch: int) -> torch.Tensor:
    """One row per input for the store: the samples themselves, or their mean when an input gives many."""
    if samples.shape[0] == batch:
        return samples
    return samples.reshape(batch, -1, samples.shape[-1]).mean(dim=1)


def output_width(t: torch.Tensor, layer: Layer) -> int:
    """Width d of a layer output: channels for convolutions, the last dim otherwise."""
    return int(t.shape[1] if layer.kind == CONV else t.shape[-1])
