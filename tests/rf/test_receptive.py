"""Receptive fields from the traced graph against the recursion done by hand (docs/method.md, receptive field)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from satcli.rf.report import rf_report

REPO = Path(__file__).resolve().parents[2]


def _hand_vgg(features: nn.Sequential) -> dict[str, tuple[int, int]]:
    """r and j after each conv of a single-path stack: r += (k - 1) * d * j, j *= s, conv and pool alike."""
    r, j, found = 1, 1, {}
    for index, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
        elif isinstance(module, nn.MaxPool2d):
            k, s, d = module.kernel_size, module.stride, module.dilation
        else:
            continue
        r, j = r + (k - 1) * d * j, j * s
        if isinstance(module, nn.Conv2d):
            found[f"features.{index}"] = (r, j)
    return found


def test_vgg11_single_path_matches_the_recursion_by_hand() -> None:
    model = torchvision.models.vgg11().eval()
    report = rf_report(model, [(32,), (224,)])
    hand = _hand_vgg(model.features)
    got = {layer.name: layer for layer in report.layers}
    assert list(hand) == [name for name in got if name.startswith("features")]
    for name, (r, j) in hand.items():
        field = got[name].field
        assert field.r_min == field.r_max == (r, r) and field.jump == (j, j), name
        assert got[name].past_border == (r > 32, r > 224)
    assert hand["features.18"] == (134, 16)  # the last conv: 3x3 convs and 2x2 pools from 3 up to 134
    assert all(got[f"classifier.{i}"].field.whole for i in (0, 3, 6))
    assert report.border_layers((224, 224)) == ["classifier.0", "classifier.3", "classifier.6"]


class Residual(nn.Module):
    """x -> conv3x3 -> conv3x3 (+) conv1x1 shortcut -> conv1x1: the last layer has a 1 px and a 5 px path."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.short = nn.Conv2d(2, 4, 1)
        self.out = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.b(torch.relu(self.a(x)))) + self.short(x))


def _graphs(model: nn.Module, shape: tuple[int, ...]) -> list[object]:
    x = torch.randn(1, *shape)
    return [model, torch.export.export(model, (x,)).module(), torch.jit.trace(model, x), torch.jit.script(model)]


@pytest.mark.parametrize("kind", ["module", "export", "trace", "script"])
def test_residual_block_has_r_min_from_the_shortcut_and_r_max_from_the_3x3_path(kind: str) -> None:
    model = Residual().eval()
    graph = dict(zip(["module", "export", "trace", "script"], _graphs(model, (2, 8, 8)), strict=True))[kind]
    report = rf_report(graph, [(4,)], (2, 8, 8))
    got = {layer.name: layer.field for layer in report.layers}
    assert got["a"].r_min == (3, 3) and got["b"].r_min == (5, 5) and got["short"].r_min == (1, 1)
    assert got["out"].r_min == (1, 1) and got["out"].r_max == (5, 5) and got["out"].jump == (1, 1)
    assert [layer.past_border for layer in report.layers if layer.name == "b"] == [(True,)]
    assert report.border_layers((4, 4)) == ["b"]  # out keeps a 1 px path: it still sees new context


def test_dilation_and_stride() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, dilation=2), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3)).eval()
    report = rf_report(model, [(16,)])
    fields = [layer.field for layer in report.layers]
    # 1 + (3-1)*2*1 = 5, j 2; pool: 5 + (2-1)*2 = 7, j 4; conv: 7 + (3-1)*4 = 15, j 4
    assert fields[0].r_min == (5, 5) and fields[0].jump == (2, 2)
    assert fields[1].r_min == (15, 15) and fields[1].jump == (4, 4)


def test_non_square_kernels_and_inputs() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, (3, 5), stride=(1, 2)), nn.Conv2d(2, 2, 3)).eval()
    report = rf_report(model, [(8, 32), (8, 8), (4, 8)])
    first, second = (layer.field for layer in report.layers)
    assert first.r_min == (3, 5) and first.jump == (1, 2)
    assert second.r_min == second.r_max == (5, 9) and second.jump == (1, 2)
    # Past the border only where r_min exceeds the size on every axis.
    assert report.layers[1].past_border == (False, False, True)
    assert report.sizes == ((8, 32), (8, 8), (4, 8))


def test_global_pool_makes_the_rest_see_the_whole_input_and_is_named() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.Linear(4, 2)
    ).eval()
    report = rf_report(model, [(64,)])
    assert [layer.field.whole for layer in report.layers] == [False, True, True]
    assert report.border_layers((64, 64)) == ["3", "4"]
    assert len(report.notes) == 1 and "'3'" in report.notes[0] and "adaptive_avg_pool2d" in report.notes[0]


def test_rf_cli_json_on_the_exported_sample(run_cli) -> None:
    result = run_cli(
        "rf", REPO / "sample_models" / "sensible.pt2", "--input-size", "8", "--input-size", "4x16", "--format", "json"
    )
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    first = out["layers"][0]
    assert first == {
        "name": "features.0",
        "type": "Conv2d",
        "rf_min": [3, 3],
        "rf_max": [3, 3],
        "stride": [1, 1],
        "past_border": {"8": False, "4x16": False},
    }
    assert out["layers"][2]["rf_min"] == [10, 10] and out["layers"][2]["past_border"] == {"8": True, "4x16": False}
    assert out["layers"][3]["rf_min"] == ["input", "input"] and out["layers"][3]["stride"] == [None, None]


def test_rf_cli_table_fits_80_columns(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("rf", REPO / "sample_models" / "sensible.pt2", "--input-size", "8", "--input-size", "16")
    assert result.code == 0, result.stderr
    assert "past" in result.stdout and "adaptive_avg_pool2d" in result.stdout


@pytest.mark.parametrize("size", ["0", "ax3", "8x8x8"])
def test_rf_cli_bad_size_is_one_line(run_cli, size: str) -> None:
    result = run_cli("rf", REPO / "sample_models" / "sensible.pt2", "--input-size", size)
    assert result.code == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_rf_cli_refuses_a_model_without_convolutions(run_cli) -> None:
    result = run_cli("rf", REPO / "sample_models" / "narrow.pt2", "--input-size", "8")
    assert result.code == 2 and "spatial" in result.stderr and result.stderr.count("\n") == 1
