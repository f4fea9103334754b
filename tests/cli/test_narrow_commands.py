"""Commands at 80 and 60 columns: no "…", every layer name whole once its dotted pieces are joined, every number
of the JSON uncut; the ViT layer table fits 80 columns (one cell between columns, types broken at camel case)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from satcli.render.text import format_percent

torchvision = pytest.importorskip("torchvision")
safetensors_torch = pytest.importorskip("safetensors.torch")

ARCH = "torchvision.models.vision_transformer:VisionTransformer"
KWARGS = "image_size=32,patch_size=8,num_layers=2,num_heads=2,hidden_dim=32,mlp_dim=64,num_classes=10"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny ViT's state dict and 64 random 3x32x32 inputs with labels."""
    from torchvision.models.vision_transformer import VisionTransformer

    root = tmp_path_factory.mktemp("narrow")
    torch.manual_seed(0)
    model = VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10).eval()
    safetensors_torch.save_file(model.state_dict(), root / "vit.safetensors")
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", x=rng.standard_normal((64, 3, 32, 32)).astype(np.float32), y=np.arange(64) % 10)
    return {"model": root / "vit.safetensors", "data": root / "data.npz", "root": root}


def joined_names(text: str) -> set[str]:
    """Every word of a table, a word ending in "." joined with the word that starts in the same column on the
    next line (a layer name wrapped at its dots)."""
    lines = [[(m.start(), m.group()) for m in re.finditer(r"[^\s│]+", line)] for line in text.splitlines()]
    starts = [dict(words) for words in lines]
    continued: set[tuple[int, int]] = set()
    names: set[str] = set()
    for i, words in enumerate(lines):
        for column, word in words:
            if (i, column) in continued:
                continue
            j = i
            while word.endswith(".") and j + 1 < len(lines) and column in starts[j + 1]:
                j += 1
                continued.add((j, column))
                word += starts[j][column]
            names.add(word)
    return names


def at(run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, columns: str, *args: object) -> str:
    monkeypatch.setenv("COLUMNS", columns)
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    return result.stdout


def vit_args(vit: dict[str, Path]) -> list[object]:
    return [vit["model"], "--arch", ARCH, "--arch-kwargs", KWARGS]


def check_layers(text: str, layers: list[dict[str, Any]]) -> None:
    """Every layer name whole; width, samples, k and saturation (as the table shows it) uncut."""
    words = joined_names(text)
    for layer in layers:
        assert layer["name"] in words, (layer["name"], text)
        for number in (layer["width"], layer["samples"], layer["k"]):
            assert str(number) in words, (number, text)
        assert format_percent(layer["saturation"]) in words, text


@pytest.mark.parametrize("columns", ["80", "60"])
@pytest.mark.parametrize("which", ["vit", "sensible"])
def test_analyze_and_report(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, vit: dict[str, Path], columns: str, which: str
) -> None:
    store = vit["root"] / f"{which}-{columns}.h5"
    model = (
        [*vit_args(vit), "--data", vit["data"]] if which == "vit" else [SAMPLES / "sensible.pt2", "--data", "digits"]
    )
    text = at(run_cli, monkeypatch, columns, "analyze", *model, "--store", store, "--force")
    layers = json.loads(run_cli("report", store, "-f", "json").stdout)["layers"]
    check_layers(text, layers)
    check_layers(at(run_cli, monkeypatch, columns, "report", store), layers)


def test_vit_layer_table_fits_80_columns(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, vit: dict[str, Path]
) -> None:
    """With the table's own two-cell gaps it needs 94 columns; one-cell gaps and "Multihead/Attention" fit 80."""
    text = at(run_cli, monkeypatch, "80", "analyze", *vit_args(vit), "--data", vit["data"], "--no-store")
    table = text[text.index("# ") : text.index("╭")]
    assert max(len(line) for line in table.splitlines()) <= 80, table
    assert "Multihead" in table and "Attention" in table


@pytest.mark.parametrize("columns", ["80", "60"])
@pytest.mark.parametrize(
    "command",
    [
        ["project", "{vit}", "--data", "{data}"],
        ["weights", "{vit}"],
        ["svr", "{vit}", "--input-shape", "3,32,32"],
        ["rf", "{vit}", "--input-size", "32"],
        ["similarity", "{vit}", "--data", "{data}"],
        ["layers", "{vit}"],
        ["analyses"],
        ["analyze", "{sensible}", "{sensible_more}", "--data", "digits", "--no-store", "--trajectory"],
    ],
    ids=lambda c: c[0] if c[0] != "analyze" else "trajectory",
)
def test_commands_cut_nothing(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, vit: dict[str, Path], command: list[str], columns
) -> None:
    paths = {"{vit}": vit["model"], "{data}": vit["data"]}
    paths |= {"{sensible}": SAMPLES / "sensible.pt2", "{sensible_more}": SAMPLES / "sensible_more.pt2"}
    args = [paths.get(a, a) for a in command]
    if "{vit}" in command and command[0] != "analyses":
        args += ["--arch", ARCH, "--arch-kwargs", KWARGS]
    text = at(run_cli, monkeypatch, columns, *args)
    if command[0] == "weights":
        names = {layer["name"] for layer in json.loads(run_cli(*args, "-f", "json").stdout)["layers"]}
        assert names and names <= joined_names(text), (names - joined_names(text), text)


@pytest.mark.parametrize("columns", ["80", "60"])
def test_compare(run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, vit: dict[str, Path], columns) -> None:
    stores = []
    for name in ("sensible", "sensible_more"):
        stores.append(vit["root"] / f"cmp-{name}.h5")
        assert (
            run_cli("analyze", SAMPLES / f"{name}.pt2", "--data", "digits", "--store", stores[-1], "--force").code == 0
        )
    text = at(run_cli, monkeypatch, columns, "compare", *stores)
    layers = json.loads(run_cli("report", stores[0], "-f", "json").stdout)["layers"]
    assert {layer["name"] for layer in layers} <= joined_names(text), text
