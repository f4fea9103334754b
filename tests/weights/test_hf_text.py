"""`satcli svr` and `satcli weights` on Hugging Face text models: token ids for the one forward pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from hf_helpers import write_bert, write_gpt2

pytestmark = pytest.mark.usefixtures("hf_offline")


def run_json(run_cli: Callable[..., Any], *args: object) -> dict[str, Any]:
    result = run_cli(*args, "--format", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_svr_and_weights_on_a_tiny_bert(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    model = write_bert(tmp_path / "bert")
    linear = {
        name: m.weight.detach().double().numpy() for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    svr = run_json(run_cli, "svr", tmp_path / "bert")
    assert svr["order"] == "one forward pass on 16 random token ids"
    got = {layer["name"]: layer for layer in svr["layers"]}
    assert list(got) == list(linear)  # forward order, every Linear
    for name, weight in linear.items():
        np.testing.assert_allclose(got[name]["singular_values"], np.linalg.svd(weight, compute_uv=False), rtol=1e-9)
    pairs = {(pair["from"], pair["to"]) for pair in svr["pairs"]}
    assert ("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense") in pairs
    weights = run_json(run_cli, "weights", tmp_path / "bert")
    assert [layer["name"] for layer in weights["layers"]] == list(linear)


def test_gpt2_conv1d_weights_read_as_out_by_in(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """transformers' Conv1D stores its weight as (in, out); its matrix is the transpose, as a Linear's."""
    model = write_gpt2(tmp_path / "gpt2")
    record = run_json(run_cli, "weights", tmp_path / "gpt2")
    shapes = {layer["name"]: layer["shape"] for layer in record["layers"]}
    assert shapes["transformer.h.0.mlp.c_fc"] == [128, 32]
    assert shapes["transformer.h.0.attn.c_attn"] == [96, 32]
    top = np.linalg.svd(model.transformer.h[0].mlp.c_fc.weight.detach().double().numpy(), compute_uv=False)[0]
    spectral = {layer["name"]: layer["spectral_norm"] for layer in record["layers"]}
    np.testing.assert_allclose(spectral["transformer.h.0.mlp.c_fc"], top, rtol=1e-9)
