"""Activation health at every position of a convolution (docs/method.md sec. 11) against numpy float64: the
per-input float32 sums of |x| within their bound and independent of the batching, a channels-last output, and
NaN/inf positions left out whatever the run's pooling lets through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import satcli
from satcli.analyses.health import HealthAnalysis, HealthOptions
from satcli.engine.options import AnalysisOptions
from satcli.engine.recorder import Recorder
from satcli.store.reader import read_store
from satcli.taps import reduce as reduce_module
from satcli.taps.layers import Layer

CONV = Layer(name="c", type="Conv2d", kind="conv", width=6)


def _numpy(positions: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "maximum": positions.max(axis=0),
        "abs_sum": np.abs(positions).sum(axis=0),
    }


def _health(outputs: list[torch.Tensor]) -> dict[str, np.ndarray]:
    analysis = HealthAnalysis(HealthOptions(), "cpu")
    for out in outputs:
        analysis.update(CONV, out.movedim(1, -1), None)  # the recorder's channelwise view of the output
    return analysis.state()["c"]  # type: ignore[return-value]


@pytest.mark.parametrize("side", [24, 4])  # a plane summed over its positions first, or over inputs first
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_conv_positions_against_numpy_in_any_batching(memory_format: torch.memory_format, side: int) -> None:
    generator = torch.Generator().manual_seed(3)
    out = torch.randn(40, 6, side, side, generator=generator) * torch.logspace(-3, 3, 6)[:, None, None]
    out[:, 2] = -out[:, 2].abs()  # a dead channel
    out[3, 4, :2] = 0.0  # zeros are not > 0
    out = out.contiguous(memory_format=memory_format)
    want = _numpy(out.double().numpy().transpose(0, 2, 3, 1).reshape(-1, 6))
    whole, batched = _health([out]), _health(list(out.split(7)))
    for got in (whole, batched):
        assert np.array_equal(got["maximum"], want["maximum"])
        assert got["samples"] == 40 * side * side
        # float32 partial sums of n terms >= 0 (one input's 576 positions; 40 inputs at one of 16 positions):
        # relative error at most (n - 1) x 2^-24 <= 3.4e-5, measured ~1e-7. Channels-last: float64 throughout.
        tol = 1e-6 if memory_format == torch.contiguous_format else 1e-12
        np.testing.assert_allclose(got["abs_sum"], want["abs_sum"], rtol=tol)
    if side == 24:  # per-input sums do not depend on how the inputs were batched (only the float64 order)
        np.testing.assert_allclose(batched["abs_sum"], whole["abs_sum"], rtol=1e-13)


def _overflowing_conv() -> nn.Sequential:
    """A 1x1 convolution whose channel 0 is -2 x (input): -inf where the input is 3e38; channel 1 stays finite."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with torch.no_grad():
        model[0].weight[:] = torch.tensor([-2.0, 1.0])[:, None, None, None]
        model[0].bias.zero_()
    return model


@pytest.mark.parametrize("conv_method", ["mean", "max", "channelwise"])
def test_nonfinite_positions_are_left_out_whatever_the_pooling(conv_method: str, tmp_path) -> None:
    """Under max pooling a -inf position leaves the pooled sample finite: health must still leave it out."""
    x = torch.randn(32, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    x[5, 0, 2, 3] = 3e38
    model = _overflowing_conv()
    store = tmp_path / "h.h5"
    satcli.analyze_model(model, list(x.split(8)), conv_method=conv_method, store=store)
    _, (checkpoint,) = read_store(store)
    got = checkpoint.layers[0].extras["health"]
    with torch.no_grad():
        positions = model[0](x).double().numpy().transpose(0, 2, 3, 1).reshape(-1, 2)
    finite = positions[np.isfinite(positions).all(axis=1)]
    assert len(finite) == len(positions) - 1
    want = _numpy(finite)
    assert got["samples"] == len(finite)  # type: ignore[index]
    assert np.array_equal(got["maximum"], want["maximum"])  # type: ignore[index]
    np.testing.assert_allclose(got["abs_sum"], want["abs_sum"], rtol=1e-6)  # type: ignore[index]


def test_real_tokens_of_padded_batches_in_blocks_against_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Health sees every real token and no padding (NaN here) when the recorder copies them out in blocks."""
    monkeypatch.setattr(reduce_module.position_blocks, "__defaults__", (None, 3 * 10 * 4))  # 3 inputs a block
    generator = torch.Generator().manual_seed(7)
    seq = torch.randn(8, 10, 4, generator=generator)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 1, 3, 7, 2, 9, 5, 4])[:, None]
    health = HealthAnalysis(HealthOptions(), "cpu")
    recorder = Recorder(AnalysisOptions(), [health])
    recorder.record(
        Layer(name="fc", type="Linear", kind="dense", width=4), seq.masked_fill(~mask[..., None], np.nan), mask, None
    )
    got = health.state()["fc"]
    want = _numpy(seq.double().numpy()[mask.numpy()])
    assert got["samples"] == int(mask.sum())  # type: ignore[index]
    assert np.array_equal(got["maximum"], want["maximum"])  # type: ignore[index]
    np.testing.assert_allclose(got["abs_sum"], want["abs_sum"], rtol=1e-12)  # type: ignore[index]
