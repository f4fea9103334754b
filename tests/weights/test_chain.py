"""The SVR's layer chain: forward order and composing pairs, the same from hooks, export and TorchScript."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.weights.chain import parse_shape, resolve_input_shape
from satcli.weights.report import model_chain

SHAPE = (1, 8, 8)


class Residual(nn.Module):
    """conv -> BN -> relu, a residual block, a 1x1 conv and a functional flatten into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.mix = nn.Conv2d(4, 5, 1)
        self.fc = nn.Linear(5 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = y + self.block(y)
        y = torch.relu(self.mix(y))
        return self.fc(y.view(y.size(0), -1))


class Branches(nn.Module):
    """Two convolutions concatenated, then a conv; a channel transpose before a Linear; a shared layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3)
        self.b = nn.Conv2d(1, 3, 3)
        self.merge = nn.Conv2d(6, 6, 1)
        self.head = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.merge(torch.cat([self.a(x), self.b(x)], dim=1))
        y = y.mean(dim=(2, 3))
        return self.head(torch.relu(self.head(y)))


def _variants(model: nn.Module) -> dict[str, nn.Module]:
    model.eval()
    example = torch.zeros((2, *SHAPE))
    return {
        "module": model,
        "script": torch.jit.script(model),
        "trace": torch.jit.trace(model, example),
        "export": torch.export.export(model, (example,)).module(),
    }


def _summary(model: nn.Module) -> tuple[list[str], list[tuple], list[tuple]]:
    chain, _ = model_chain(model, SHAPE, torch.device("cpu"))
    links = [(k.src, k.dst, k.positions, k.flattened, k.bn.name if k.bn else None) for k in chain.links]
    return chain.layers, links, [(s.src, s.dst, s.reason) for s in chain.skipped]


@pytest.mark.parametrize("kind", ["module", "script", "trace", "export"])
def test_residual_model_chain_is_the_same_for_every_kind_of_module(kind: str) -> None:
    torch.manual_seed(0)
    layers, links, skipped = _summary(_variants(Residual())[kind])
    assert layers == ["conv", "block", "mix", "fc"]
    assert links == [("conv", "block", 1, False, "bn"), ("mix", "fc", 36, True, None)]
    assert skipped == [("block", "mix", "residual add ('add') of 'conv', 'block' between the layers")]


def test_concatenation_reduction_and_weight_sharing() -> None:
    layers, links, skipped = _summary(Branches())
    assert layers == ["a", "b", "merge", "head"]
    assert links == [("merge", "head", 1, False, None), ("head", "head", 1, False, None)]
    assert skipped == [("a", "merge", "concatenation ('cat') of 'a', 'b' between the layers")]


def test_channel_mixing_ops_and_grouped_convolutions_break_the_chain() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3)
            self.c2 = nn.Conv2d(4, 4, 3, groups=2)
            self.c3 = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c3(torch.softmax(self.c2(self.c1(x)), dim=1))

    _, links, skipped = _summary(Odd())
    assert links == []
    reasons = {(s, d): r for s, d, r in skipped}
    assert "per group" in reasons[("c1", "c2")]
    assert reasons[("c2", "c3")] == "'softmax' between the layers does not keep channels"


def test_input_shape_comes_from_the_caller_or_a_first_linear_layer() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 4))
    assert resolve_input_shape(mlp, None) == (64,)
    assert resolve_input_shape(mlp, (1, 8, 8)) == (1, 8, 8)
    with pytest.raises(SatcliError, match="input shape is unknown"):
        model_chain(Residual(), None, torch.device("cpu"))
    assert parse_shape("1,8,8") == (1, 8, 8)
    with pytest.raises(SatcliError, match="bad input shape"):
        parse_shape("1,a")


def test_a_forward_pass_that_fails_is_one_clear_error() -> None:
    with pytest.raises(SatcliError, match=r"one forward pass on an input of shape \(2, 3, 8, 8\) failed"):
        model_chain(Residual(), (3, 8, 8), torch.device("cpu"))
