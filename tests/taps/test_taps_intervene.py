"""Intervening taps: replaced outputs reach the rest of the model; hooks, graph nodes and mode are restored."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLE_MODELS
from torch import nn

from satcli.errors import ModelError, SatcliError
from satcli.models import load_model
from satcli.taps import Layer, discover
from satcli.taps.intervene import intervene, output_tensor


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))


def ones(layer: Layer, z: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z)


def test_module_output_is_replaced_and_hooks_and_mode_restored() -> None:
    model = mlp().train()
    x = torch.randn(5, 4)
    with intervene(model, discover(model)) as net:
        assert not model.training  # dropout off while intervening
        replaced = net.run(x, {"0": ones})
        plain = net.run(x)
    second = model[3]
    expected = second(torch.relu(torch.ones(5, 6)))
    torch.testing.assert_close(replaced, expected, rtol=0, atol=0)
    torch.testing.assert_close(plain, model.eval()(x), rtol=0, atol=0)
    model.train()
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_removed_and_mode_restored_after_an_error() -> None:
    model = mlp().train()
    with pytest.raises(ModelError, match="model and data do not fit"), intervene(model, discover(model)) as net:
        net.run(torch.randn(5, 7), {"0": ones})
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_recurrent_output_sequence_is_replaced() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, hidden = self.rnn(x)
            return out.sum(dim=1) + hidden[0]

    model = Net()
    x = torch.randn(2, 5, 3)
    with intervene(model, discover(model)) as net:
        got = net.run(x, {"rnn": ones})
    _, hidden = model.rnn(x)
    torch.testing.assert_close(got, 5.0 + hidden[0])


def test_export_graph_output_is_replaced_and_graph_restored() -> None:
    loaded = load_model(SAMPLE_MODELS / "sensible.pt2", device="cpu")
    gm = loaded.module
    code_before = gm.code
    nodes_before = len(gm.graph.nodes)
    x = torch.randn(3, 1, 8, 8)
    base = gm(x)
    with intervene(gm, discover(gm)) as net:
        got = net.run(x, {"head.0": ones})
        plain = net.run(x)
    state = torch.load(SAMPLE_MODELS / "sensible_state_dict.pt", weights_only=True)
    expected = torch.ones(3, 16).relu() @ state["head.2.weight"].T + state["head.2.bias"]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(plain, base, rtol=0, atol=0)
    assert gm.code == code_before and len(gm.graph.nodes) == nodes_before
    assert not any(name.startswith("_satcli") for name, _ in gm.named_children())
    torch.testing.assert_close(gm(x), base, rtol=0, atol=0)


class Affine:
    """z -> center + (z - center) @ matrix on the channel vector, in Python and as a TorchScript graph runs it."""

    def __init__(self, center: torch.Tensor, matrix: torch.Tensor) -> None:
        self.center, self.matrix = center.double(), matrix.double()

    def __call__(self, layer: Layer, z: torch.Tensor) -> torch.Tensor:
        moved = z.movedim(1, -1) if z.ndim == 4 else z
        out = (self.center + (moved.double() - self.center) @ self.matrix).to(z.dtype)
        return out.movedim(-1, 1) if z.ndim == 4 else out

    def affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.center.to(device), self.matrix.to(device)


def test_torchscript_outputs_are_replaced_in_a_graph_copy() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    scripted = torch.jit.script(model).train()
    graph_before = str(scripted.forward.graph)
    conv = Affine(torch.randn(3), torch.randn(3, 3))
    linear = Affine(torch.randn(4), torch.randn(4, 4))
    x = torch.randn(2, 1, 8, 8)
    with intervene(scripted, discover(scripted)) as net:
        assert not scripted.training
        got = net.run(x, {"0": conv, "3": linear})
        plain = net.run(x)
    with torch.no_grad():
        z = conv(Layer("0", "Conv2d", "conv"), model[0](x))  # by hand: the reference forward, edited
        expected = linear(Layer("3", "Linear", "dense"), model[3](torch.relu(z).flatten(1)))
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(plain, model(x), rtol=0, atol=0)
    assert scripted.training and str(scripted.forward.graph) == graph_before


def test_torchscript_needs_affine_transforms() -> None:
    scripted = torch.jit.script(mlp())
    with pytest.raises(SatcliError, match="affine replacement") as info, intervene(scripted, discover(scripted)) as net:
        net.run(torch.randn(2, 4), {"0": ones})
    assert "\n" not in str(info.value)


def test_output_tensor_of_common_output_types() -> None:
    t = torch.ones(2, 3)

    class Out:
        logits = t

    for out in (t, (t, torch.zeros(1)), Out(), {"logits": t}, {"scores": t}):
        assert output_tensor(out).data_ptr() == t.data_ptr()
    with pytest.raises(ModelError, match="not a tensor"):
        output_tensor("text")
