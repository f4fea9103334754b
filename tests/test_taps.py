"""Layer discovery, forward order, reductions and tap clean-up for all three kinds of model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.taps import Layer, Reduction, discover, open_taps, reduce_output, select
from satcli.taps.reduce import pooled_per_input

warnings.filterwarnings("ignore", category=FutureWarning)


class Net(nn.Module):
    """Registers `late` before `early` but runs `early` first, shares `fc`, and has an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(8, 6)
        self.early = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.fc = nn.Linear(8, 8)
        self.rnn = nn.LSTM(6, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.early(x)))).mean((2, 3))
        x = self.fc(torch.relu(self.fc(x)))
        x = self.late(x)
        y, _ = self.rnn(x.unsqueeze(1).repeat(1, 4, 1))
        return self.head(y[:, -1])


FORWARD = ["early", "conv2", "fc", "late", "rnn", "head"]


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _hooked(module: nn.Module, x: torch.Tensor) -> list[tuple[Layer, torch.Tensor]]:
    with open_taps(module) as taps:
        return taps.forward(x)


def test_hooks_follow_forward_order_and_record_every_call(net: Net, x: torch.Tensor) -> None:
    assert [layer.name for layer in discover(net)] == ["late", "early", "conv2", "fc", "rnn", "head"]
    with open_taps(net) as taps:
        captured = taps.forward(x)
        assert [layer.name for layer in taps.layers] == FORWARD
        assert [layer.width for layer in taps.layers] == [4, 8, 8, 6, 5, 3]
        assert [layer.order for layer in taps.layers] == list(range(6))
    assert [layer.name for layer, _ in captured] == ["early", "conv2", "fc", "fc", "late", "rnn", "head"]
    first_fc, second_fc = (t for layer, t in captured if layer.name == "fc")
    torch.testing.assert_close(second_fc, net.fc(torch.relu(first_fc)))


def test_hooks_removed_and_mode_restored_also_on_failure(net: Net) -> None:
    net.train()
    with pytest.raises(SatcliError), open_taps(net) as taps:
        assert not net.training
        taps.forward(torch.randn(2, 3, 8, 8))
    assert net.training
    for module in net.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_mismatch_names_first_failing_layer_and_both_shapes(net: Net) -> None:
    with pytest.raises(SatcliError) as err, open_taps(net) as taps:
        taps.forward(torch.randn(2, 3, 8, 8))
    message = str(err.value)
    assert "'early' (Conv2d)" in message and "(B, 1, H, W)" in message and "(2, 3, 8, 8)" in message
    assert "\n" not in message


def test_export_graph_taps_match_hooks_and_graph_is_restored(net: Net, x: torch.Tensor, tmp_path: Path) -> None:
    ep = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    gm = torch.export.load(tmp_path / "m.pt2").module()
    before = gm.code
    assert [layer.name for layer in discover(gm)] == FORWARD
    expected = _hooked(net, x)
    with open_taps(gm) as taps:
        got = taps.forward(x)
        assert [(layer.name, layer.type, layer.width) for layer in taps.layers] == [
            (layer.name, layer.type, layer.width) for layer in _layers_of(net, x)
        ]
    assert [layer.name for layer, _ in got] == [layer.name for layer, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert gm.code == before
    assert not [name for name, _ in gm.named_children() if name.startswith("_satcli")]


def test_export_graph_mismatch(net: Net, x: torch.Tensor) -> None:
    gm = torch.export.export(net, (x,)).module()  # static shapes
    with pytest.raises(SatcliError) as err, open_taps(gm) as taps:
        taps.forward(torch.randn(5, 3, 8, 8))
    assert "'early' (Conv2d) expects input (5, 1, 8, 8)" in str(err.value)
    assert "(5, 3, 8, 8)" in str(err.value)


def test_torchscript_graph_taps_match_hooks(x: torch.Tensor, tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 7), nn.ReLU(), nn.Linear(7, 3))
    plain.eval()
    torch.jit.save(torch.jit.script(plain), tmp_path / "m.ts")
    sm = torch.jit.load(tmp_path / "m.ts")
    assert [(layer.name, layer.type, layer.width) for layer in discover(sm)] == [
        ("0", "Conv2d", 4),
        ("3", "Linear", 7),
        ("5", "Linear", 3),
    ]
    expected = _hooked(plain, x)
    with open_taps(sm) as taps:
        got = taps.forward(x)
    for (la, a), (lb, b) in zip(got, expected, strict=True):
        assert la.name == lb.name
        torch.testing.assert_close(a, b)
    with pytest.raises(SatcliError, match=r"'0' \(Conv2d\) expects input \(B, 1, \.\.\.\)"), open_taps(sm) as taps:
        taps.forward(torch.randn(2, 3, 8, 8))


def _layers_of(module: nn.Module, x: torch.Tensor) -> list[Layer]:
    with open_taps(module) as taps:
        taps.forward(x)
        return taps.layers


def test_select_globs(net: Net, x: torch.Tensor) -> None:
    layers = discover(net)
    assert [layer.name for layer in select(layers, ["f*", "h*"])] == ["fc", "head"]
    assert [layer.name for layer in select(layers, [], ["*a*"])] == ["conv2", "fc", "rnn"]
    with open_taps(net, include=["conv*", "head"]) as taps:
        assert [layer.name for layer, _ in taps.forward(x)] == ["conv2", "head"]
    with pytest.raises(SatcliError, match="no layer matches"), open_taps(net, include=["nothing*"]):
        pass


def test_model_without_tracked_layers() -> None:
    with pytest.raises(SatcliError, match="no trackable layers"), open_taps(nn.ReLU()):
        pass


CONV = Layer("c", "Conv2d", "conv", 3)


def test_conv_reductions_against_numpy() -> None:
    t = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    a = t.numpy()
    np.testing.assert_allclose(reduce_output(t, CONV, Reduction("mean")).numpy(), a.mean(axis=(2, 3)))
    np.testing.assert_allclose(reduce_output(t, CONV, Reduction("max")).numpy(), a.max(axis=(2, 3)))
    rows = reduce_output(t, CONV, Reduction("channelwise")).numpy()
    np.testing.assert_allclose(rows, a.transpose(0, 2, 3, 1).reshape(-1, 3))
    pooled = pooled_per_input(t, torch.from_numpy(rows), CONV, 2).numpy()
    np.testing.assert_allclose(pooled, a.mean(axis=(2, 3)))


def test_sequence_reductions_and_time_major_rnn() -> None:
    t = torch.randn(2, 4, 3, dtype=torch.float64)  # (B, T, d)
    dense = Layer("fc", "Linear", "dense", 3)
    np.testing.assert_allclose(reduce_output(t, dense, Reduction(sequence_method="mean")).numpy(), t.numpy().mean(1))
    np.testing.assert_allclose(reduce_output(t, dense, Reduction(sequence_method="last")).numpy(), t.numpy()[:, -1])
    np.testing.assert_allclose(
        reduce_output(t, dense, Reduction(sequence_method="tokens")).numpy(), t.numpy().reshape(-1, 3)
    )
    time_major = Layer("rnn", "LSTM", "recurrent", 3, batch_first=False)
    np.testing.assert_allclose(
        reduce_output(t.transpose(0, 1), time_major, Reduction(sequence_method="last")).numpy(), t.numpy()[:, -1]
    )
    assert Reduction().name_for(dense, 2) == "none"
    assert Reduction(sequence_method="tokens").name_for(dense, 3) == "tokens"


def test_bad_reduction_names() -> None:
    with pytest.raises(SatcliError, match="conv reduction"):
        Reduction("median")
    with pytest.raises(SatcliError, match="sequence reduction"):
        Reduction(sequence_method="first")


def test_taps_see_outputs_before_in_place_activations() -> None:
    """ReLU(inplace=True) rewrites a Linear's output after its tap: every tap kind must see the pre-activation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 2)).eval()
    x = torch.randn(16, 4)
    expected = model[0](x)
    assert expected.min() < 0
    kinds = {
        "hooks": model,
        "script": torch.jit.script(model),
        "export": torch.export.export(model, (x,)).module(),
    }
    for kind, module in kinds.items():
        with open_taps(module) as taps:
            streamed: list[torch.Tensor] = []
            taps.stream(x, lambda layer, t, keep=streamed: keep.append(t.clone()) if layer.name == "0" else None)
            collected = dict((layer.name, t) for layer, t in taps.forward(x))
        torch.testing.assert_close(streamed[0], expected, msg=kind)
        torch.testing.assert_close(collected["0"], expected, msg=kind)


def test_stored_rows_are_samples_only_when_each_input_gives_one() -> None:
    """Masked tokens give (N_real, d) samples: their stored rows are per-input means, not the samples."""
    import torch

    from satcli.engine.recorder import per_input as _per_input

    out = torch.zeros(4, 7, 5)
    assert _per_input(torch.zeros(4, 5), torch.zeros(4, 5))
    assert not _per_input(torch.zeros(4, 3, 3, 5), torch.zeros(4, 5, 3, 3))
    assert not _per_input(torch.zeros(11, 5), out)  # 11 real tokens of 4 inputs
