"""Affine layers measured through their input (docs/method.md sec. 1): the saturation analysis fed a layer's
input, and whole runs, against numpy/scipy float64 on the layer's outputs.

Two references: y = x W + b formed in float64 (what the input route computes, exactly: tight tolerances), and
the float32 outputs the forward pass produced (what the output route sums). The second differs from the first by
the forward pass's float32 rounding, so its tolerance is measured here: the same model run with another batch
size gives float32 outputs that differ by that much from each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from engine_helpers import run_state
from torch import nn

from satcli.analyses.saturation import SaturationAnalysis, SaturationOptions
from satcli.core.state import LayerStats
from satcli.taps.layers import AffineInput, Layer, affine_weights

WIDE = Layer("up", "Linear", "dense", 40)


def _stats_reference(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centered = y - y.mean(axis=0)
    m2 = centered.T @ centered
    return y.mean(axis=0), m2, np.clip(scipy.linalg.eigvalsh(m2 / (len(y) - 1))[::-1], 0, None)


def _check(stats: LayerStats, y: np.ndarray, rel: float) -> None:
    mean, m2, eigs = _stats_reference(y)
    assert stats.samples == len(y)
    assert np.linalg.norm(np.asarray(stats.mean) - mean) <= rel * np.linalg.norm(mean)
    assert np.linalg.norm(np.asarray(stats.m2) - m2) <= rel * np.linalg.norm(m2)
    np.testing.assert_allclose(stats.eigenvalues, eigs, rtol=0, atol=rel * eigs[0])


@pytest.fixture
def layer_data() -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(300, 9)) * np.geomspace(4, 0.05, 9) + 2).astype(np.float32)
    weight = torch.from_numpy(rng.normal(size=(9, 40)).astype(np.float32))
    bias = torch.from_numpy(rng.normal(size=40).astype(np.float32))
    return x, weight, bias


def _outputs(x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    return x.astype(np.float64) @ weight.double().numpy() + bias.double().numpy()


def _feed(analysis: SaturationAnalysis, x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor, source: bool) -> None:
    for start in range(0, len(x), 64):
        rows = torch.from_numpy(x[start : start + 64])
        out = (rows.double() @ weight.double() + bias.double()).float()
        analysis.update(WIDE, out, None, source=AffineInput(rows, weight, bias) if source else None)


def test_the_input_route_gives_the_outputs_moments(layer_data: tuple[np.ndarray, torch.Tensor, torch.Tensor]) -> None:
    x, weight, bias = layer_data
    analysis = SaturationAnalysis(device="cpu")
    _feed(analysis, x, weight, bias, source=True)
    assert analysis.accumulators["up"].width == 9  # the input is summed, not the 40-wide output
    assert "up" in analysis.affine
    mid = analysis.layer_moments("up")
    _check_moments = _stats_reference(_outputs(x, weight, bias))
    assert np.linalg.norm(mid.m2.numpy() - _check_moments[1]) <= 1e-12 * np.linalg.norm(_check_moments[1])
    analysis.finish(nn.Identity())
    stats = analysis.state()["up"]
    assert isinstance(stats, LayerStats)
    _check(stats, _outputs(x, weight, bias), 1e-12)
    assert np.all(np.asarray(stats.eigenvalues)[9:] == 0.0)


def test_fewer_samples_than_input_columns_sum_the_kept_outputs(
    layer_data: tuple[np.ndarray, torch.Tensor, torch.Tensor],
) -> None:
    """6 samples of a 9 -> 40 layer: the kept output rows' own sums cost less than the map, so the moments are
    those of the float32 outputs the analysis was handed (as without the input route)."""
    x, weight, bias = layer_data
    analysis = SaturationAnalysis(device="cpu")
    rows = torch.from_numpy(x[:6])
    out = (rows.double() @ weight.double() + bias.double()).float()
    analysis.update(WIDE, out, None, source=AffineInput(rows, weight, bias))
    assert "up" in analysis.affine  # streamed through the input all the same
    analysis.finish(nn.Identity())
    stats = analysis.state()["up"]
    assert isinstance(stats, LayerStats)
    _check(stats, out.double().numpy(), 1e-12)


def test_a_batch_without_its_input_switches_to_the_output(
    layer_data: tuple[np.ndarray, torch.Tensor, torch.Tensor],
) -> None:
    x, weight, bias = layer_data
    analysis = SaturationAnalysis(device="cpu")
    _feed(analysis, x[:128], weight, bias, source=True)
    _feed(analysis, x[128:], weight, bias, source=False)  # float32 outputs from here on
    assert "up" not in analysis.affine and analysis.accumulators["up"].width == 40
    stats = analysis.state()["up"]
    assert isinstance(stats, LayerStats)
    y = np.concatenate([_outputs(x[:128], weight, bias), _outputs(x[128:], weight, bias).astype(np.float32)])
    _check(stats, y.astype(np.float64), 1e-12)


def test_merging_into_a_layer_measured_through_its_input(
    layer_data: tuple[np.ndarray, torch.Tensor, torch.Tensor],
) -> None:
    x, weight, bias = layer_data
    first, second = SaturationAnalysis(device="cpu"), SaturationAnalysis(device="cpu")
    _feed(first, x[:100], weight, bias, source=True)
    _feed(second, x[100:], weight, bias, source=True)
    first.merge(second.state())
    stats = first.state()["up"]
    assert isinstance(stats, LayerStats)
    _check(stats, _outputs(x, weight, bias), 1e-12)


@pytest.mark.parametrize(
    "options", [SaturationOptions(affine_inputs=False), SaturationOptions(precision="float32")], ids=["off", "f32"]
)
def test_the_output_route_when_asked_or_in_float32(
    options: SaturationOptions, layer_data: tuple[np.ndarray, torch.Tensor, torch.Tensor]
) -> None:
    x, weight, bias = layer_data
    analysis = SaturationAnalysis(options, device="cpu")
    _feed(analysis, x, weight, bias, source=True)
    assert not analysis.affine and analysis.accumulators["up"].width == 40


def test_a_narrowing_layer_keeps_the_output_route() -> None:
    analysis = SaturationAnalysis(device="cpu")
    x = torch.randn(20, 6)
    weight = torch.randn(6, 4)
    analysis.update(Layer("down", "Linear", "dense", 4), x @ weight, None, source=AffineInput(x, weight, None))
    assert not analysis.affine


class Quantized(nn.Linear):
    """A subclass: its forward may not be x W^T + b (quantized, adapted), so it is never taken as affine."""


def test_only_exact_affine_modules_qualify() -> None:
    from transformers.pytorch_utils import Conv1D

    linear = nn.Linear(3, 5)
    found = affine_weights(linear)
    assert found is not None and torch.equal(found[0], linear.weight.T) and found[1] is linear.bias
    conv1d = Conv1D(7, 3)  # transformers: nf=7 outputs, nx=3 inputs, weight (3, 7)
    found = affine_weights(conv1d)
    assert found is not None and found[0] is conv1d.weight
    assert affine_weights(Quantized(3, 5)) is None
    assert affine_weights(nn.Linear(3, 5).half()) is None
    assert affine_weights(nn.Conv1d(3, 5, 1)) is None
    parametrized = nn.utils.parametrizations.weight_norm(nn.Linear(3, 5))
    assert affine_weights(parametrized) is None
    broken = nn.Linear(3, 5)
    with torch.no_grad():
        broken.weight[0, 0] = float("inf")  # its float32 outputs are inf/NaN, not x W + b
    assert affine_weights(broken) is None


class Tokens(nn.Module):
    """ids -> embedding (8) -> `up` Linear 8 -> 40 -> tanh -> `down` Linear 40 -> 6."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.embed = nn.Embedding(30, 8)
        self.up, self.down = nn.Linear(8, 40), nn.Linear(40, 6)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.up(self.embed(input_ids))))


def _token_run(method: str, batch_size: int, affine: bool) -> dict[str, LayerStats]:
    from satcli.data import Batch, DataOptions, DataSource
    from satcli.engine.options import AnalysisOptions
    from satcli.taps import Reduction

    rng = np.random.default_rng(8)
    rows = [list(rng.integers(1, 30, size=int(n))) for n in rng.integers(2, 12, size=90)]

    def collate(items: list[list[int]]) -> Batch:
        width = max(len(r) for r in items)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in items])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in items])
        return Batch({"input_ids": ids, "attention_mask": mask}, None, mask.bool())

    source = DataSource(
        "tokens", "tokens", rows, len(rows), (8,), False, DataOptions(batch_size=batch_size), collate, is_text=True
    )  # type: ignore[arg-type]
    options = AnalysisOptions(
        reduction=Reduction(sequence_method=method),
        keep_moments=True,
        analyses=() if affine else ("saturation:affine_inputs=false",),
    )
    state, _ = run_state(Tokens(), source, options)
    return {layer.meta.name: layer.stats for layer in state.layers}


def _token_outputs(method: str, batch_size: int, layer: str = "up", dtype: torch.dtype = torch.float32) -> np.ndarray:
    """A layer's outputs (`up`, or the model's `down`) reduced like satcli does, numpy float64, one forward pass
    per batch of `batch_size`, the model run in `dtype`."""
    model = Tokens().eval().to(dtype)
    rng = np.random.default_rng(8)
    rows = [list(rng.integers(1, 30, size=int(n))) for n in rng.integers(2, 12, size=90)]
    out = []
    for start in range(0, len(rows), batch_size):
        items = rows[start : start + batch_size]
        width = max(len(r) for r in items)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in items])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in items]).bool()
        with torch.no_grad():
            y = (model.up(model.embed(ids)) if layer == "up" else model(ids, mask)).double().numpy()
        m = mask.numpy()
        if method == "tokens":
            out.append(y[m])
        elif method == "mean":
            out.append((y * m[..., None]).sum(axis=1) / m.sum(axis=1, keepdims=True))
        else:  # the last real token
            out.append(y[np.arange(len(items)), m.sum(axis=1) - 1])
    return np.concatenate(out)


@pytest.mark.parametrize("method", ["tokens", "mean", "last"])
def test_a_run_through_the_input_matches_the_outputs(method: str) -> None:
    """The input route against numpy on the outputs of the model run in float64 (the same float32 embeddings,
    exact weights: to float64 rounding), and on the float32 outputs within the float32 forward pass's own
    rounding, measured as what the float32 and float64 runs of the reference differ by (times 10)."""
    exact, rounded = _token_outputs(method, 16, dtype=torch.float64), _token_outputs(method, 16)
    _, m2_a, eigs_a = _stats_reference(exact)
    _, m2_b, eigs_b = _stats_reference(rounded)
    noise = max(np.linalg.norm(m2_a - m2_b) / np.linalg.norm(m2_b), np.abs(eigs_a - eigs_b).max() / eigs_b[0])
    assert 0 < noise < 1e-5  # float32 rounding, not a bug in the reference
    through = _token_run(method, 16, affine=True)
    direct = _token_run(method, 16, affine=False)
    # tokens and last select positions as they are; mean averages them in float32 first (either route)
    tight = 1e-10 if method != "mean" else 10 * noise
    _check(direct["up"], rounded, tight)  # the output route sums these very outputs
    _check(through["up"], exact, tight)
    _check(through["up"], rounded, 10 * noise)
    assert np.all(np.asarray(through["up"].eigenvalues)[8:] == 0.0)
    _check(through["down"], _token_outputs(method, 16, "down"), tight)  # narrowing: its own outputs


def test_outputs_that_overflow_leave_the_same_inputs_out(tmp_path: Path) -> None:
    """A finite input whose float32 output overflows is left out as non-finite (the output route's rule); the
    input route leaves out the same samples, so both give numpy's moments of the other outputs."""
    from satcli.data import DataOptions, open_data
    from satcli.engine.options import AnalysisOptions

    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 12)).eval()
    with torch.no_grad():
        net[0].weight[0] = 10.0
    x = np.random.default_rng(2).normal(size=(60, 3)).astype(np.float32)
    x[[7, 40]] = 1e38  # finite, but unit 0's 10 (x_0 + x_1 + x_2) + b overflows float32
    np.savez(tmp_path / "d.npz", x=x)
    options = AnalysisOptions(store_activations=False, keep_moments=True)
    state, _ = run_state(net, open_data(str(tmp_path / "d.npz"), DataOptions(batch_size=16)), options)
    stats = state.layers[0].stats
    kept = np.delete(x, [7, 40], axis=0).astype(np.float64)
    w, b = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    _check(stats, kept @ w.T + b, 1e-12)
    assert state.meta.options["nonfinite"]["layer_samples_skipped"] == {"0": 2}


@pytest.mark.skipif(not torch.amp.is_autocast_available("cpu"), reason="needs CPU autocast")
def test_a_layer_run_under_autocast_sums_its_outputs() -> None:
    """Under bfloat16 autocast a Linear's forward rounds to 8 bits: its input is not handed, its outputs are summed."""
    from satcli.taps.hooks import hook_taps

    model = nn.Sequential(nn.Linear(4, 16))
    seen: list[object] = []
    with hook_taps(model, {"0": Layer("0", "Linear", "dense", 16)}) as run:
        run(torch.randn(8, 4), lambda layer, out, source=None: seen.append(source))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            run(torch.randn(8, 4), lambda layer, out, source=None: seen.append(source))
    assert isinstance(seen[0], AffineInput) and seen[1] is None
