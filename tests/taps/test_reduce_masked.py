"""Samples of a padded (B, T, d) output from its real tokens only (docs/method.md sec. 8), against numpy float64:
mean, last and tokens with right and left padding, time-major outputs, and NaN/inf padding that must not enter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from satcli.taps.layers import Layer
from satcli.taps.reduce import Reduction, input_rows, position_blocks, sample_view

DENSE = Layer(name="fc", type="Linear", kind="dense", width=5)


def _batch(side: str, padding: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(6, 9, 5) float32 outputs and a mask of 1..9 real tokens per row, padded on `side` with `padding`."""
    generator = torch.Generator().manual_seed(5)
    seq = torch.randn(6, 9, 5, generator=generator) * 10 + 3
    lengths = torch.tensor([9, 1, 4, 7, 2, 5])
    positions = torch.arange(9)[None, :]
    if side == "none":
        lengths[:] = 9
    mask = positions < lengths[:, None] if side == "right" else positions >= 9 - lengths[:, None]
    return seq.masked_fill(~mask[..., None], padding), mask


def _numpy(seq: torch.Tensor, mask: torch.Tensor, method: str) -> np.ndarray:
    x, m = seq.double().numpy(), mask.numpy()
    real = [x[b][m[b]] for b in range(len(x))]
    if method == "mean":
        return np.stack([r.mean(axis=0) for r in real])
    if method == "last":
        return np.stack([r[-1] for r in real])
    return np.concatenate(real)


@pytest.mark.parametrize("side", ["right", "left", "none"])
@pytest.mark.parametrize("method", ["mean", "last", "tokens"])
def test_real_tokens_only_against_numpy(side: str, method: str) -> None:
    seq, mask = _batch(side, padding=1e4)  # large padding: any weight on it would show
    got = sample_view(seq, DENSE, Reduction(sequence_method=method), mask)
    want = _numpy(seq, mask, method)
    np.testing.assert_allclose(got.reshape(want.shape).double().numpy(), want, rtol=1e-6, atol=1e-5)
    if side == "none":  # no padding: the output's own samples (tokens: a view of it, (B, T, d), no copy)
        assert torch.equal(got, sample_view(seq, DENSE, Reduction(sequence_method=method)))
    time_major = Layer(name="rnn", type="LSTM", kind="recurrent", width=5, batch_first=False)
    again = sample_view(seq.transpose(0, 1), time_major, Reduction(sequence_method=method), mask)
    assert torch.equal(again, got)


@pytest.mark.parametrize("padding", [float("nan"), float("inf")])
def test_nonfinite_padding_never_enters_the_mean(padding: float) -> None:
    """A 0 weight on a NaN/inf padding token gives NaN: the mean over real tokens must not see padding at all."""
    seq, mask = _batch("left", padding)
    want = _numpy(seq, mask, "mean")
    got = sample_view(seq, DENSE, Reduction(sequence_method="mean"), mask)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-6, atol=1e-5)
    rows = input_rows(seq, sample_view(seq, DENSE, Reduction(sequence_method="tokens"), mask), DENSE, mask)
    np.testing.assert_allclose(rows.double().numpy(), want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("side", ["right", "left", "none"])
def test_position_blocks_are_every_real_token_in_order(side: str) -> None:
    seq, mask = _batch(side, padding=float("nan"))
    want = _numpy(seq, mask, "tokens")
    blocks = list(position_blocks(seq, DENSE, mask, values=2 * 9 * 5))  # two inputs per block
    assert len(blocks) == (1 if side == "none" else 3)
    got = torch.cat([block.reshape(-1, 5) for block in blocks])
    np.testing.assert_array_equal(got.double().numpy(), want)
    time_major = Layer(name="rnn", type="LSTM", kind="recurrent", width=5, batch_first=False)
    again = torch.cat([b.reshape(-1, 5) for b in position_blocks(seq.transpose(0, 1), time_major, mask, values=90)])
    assert torch.equal(again, got)
