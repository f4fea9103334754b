"""`satcli weights` and `satcli svr` on a torchvision ViT: nn.MultiheadAttention's q, k, v and out_proj matrices.

Each projection's singular values are checked against numpy's SVD of the block cut from the state dict by
hand (rows 0:E, E:2E, 2E:3E of in_proj_weight); no pair into, inside or out of an attention is composed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

torchvision = pytest.importorskip("torchvision")

ARCH = "torchvision.models.vision_transformer:VisionTransformer"
KWARGS = "image_size=32,patch_size=8,num_layers=2,num_heads=2,hidden_dim=32,mlp_dim=64,num_classes=10"
ATTENTION = "encoder.layers.encoder_layer_{}.self_attention"


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A small ViT's safetensors and, by name, every weight matrix satcli should report (float64)."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10).eval()
    path = tmp_path_factory.mktemp("vit") / "vit.safetensors"
    save_file(model.state_dict(), path)
    state = {k: v.double().numpy() for k, v in model.state_dict().items()}
    want = {"conv_proj": state["conv_proj.weight"]}
    for i in range(2):
        name = ATTENTION.format(i)
        packed = state[f"{name}.in_proj_weight"]
        want |= {f"{name}.in_proj[{p}]": packed[j * 32 : (j + 1) * 32] for j, p in enumerate("qkv")}
        want[f"{name}.out_proj"] = state[f"{name}.out_proj.weight"]
        want |= {
            f"encoder.layers.encoder_layer_{i}.mlp.{j}": state[f"encoder.layers.encoder_layer_{i}.mlp.{j}.weight"]
            for j in (0, 3)
        }
    want["heads.head"] = state["heads.head.weight"]
    return path, want


def run_json(run_cli: Callable[..., Any], *args: object) -> dict[str, Any]:
    result = run_cli(*args, "--arch", ARCH, "--arch-kwargs", KWARGS, "--format", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_weights_report_each_attention_projection(run_cli: Callable[..., Any], vit: Any) -> None:
    path, want = vit
    record = run_json(run_cli, "weights", path)
    got = {layer["name"]: layer for layer in record["layers"]}
    assert set(got) == set(want)
    for name, weight in want.items():
        slices = [weight] if weight.ndim == 2 else [weight[:, :, i, j] for i in range(8) for j in range(8)]
        top = max(np.linalg.svd(m, compute_uv=False)[0] for m in slices)
        np.testing.assert_allclose(got[name]["spectral_norm"], top, rtol=1e-9)
        np.testing.assert_allclose(got[name]["frobenius_norm"], np.sqrt(np.sum(weight**2)), rtol=1e-9)
        assert got[name]["shape"] == list(weight.shape)


def test_svr_lists_attention_matrices_and_skips_their_pairs(run_cli: Callable[..., Any], vit: Any) -> None:
    path, want = vit
    record = run_json(run_cli, "svr", path, "--input-shape", "3,32,32")
    got = {layer["name"]: layer for layer in record["layers"]}
    assert set(got) == set(want)
    for name, weight in want.items():
        matrix = weight.reshape(weight.shape[0], -1)
        np.testing.assert_allclose(
            got[name]["singular_values"], np.linalg.svd(matrix, compute_uv=False), rtol=1e-9, atol=1e-12
        )
    pairs = {(pair["from"], pair["to"]) for pair in record["pairs"]}
    assert pairs == {
        (f"encoder.layers.encoder_layer_{i}.mlp.0", f"encoder.layers.encoder_layer_{i}.mlp.3") for i in range(2)
    }
    skipped = {(entry["from"], entry["to"]): entry["reason"] for entry in record["skipped"]}
    for i in range(2):
        assert skipped[(None, ATTENTION.format(i))].startswith("attention: q, k, v and out_proj meet in softmax")


def test_separate_qkv_projections(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """kdim/vdim other than embed_dim: q_proj_weight, k_proj_weight, v_proj_weight instead of in_proj_weight."""
    attention = nn.MultiheadAttention(8, 2, kdim=5, vdim=6)
    state = {f"attn.{k}": v.detach().clone() for k, v in attention.state_dict().items()}
    from satcli.weights.matrices import attention_weights

    found = attention_weights("attn", state)
    assert {k: v.weight.shape for k, v in found.items()} == {
        "attn.in_proj[q]": (8, 8),
        "attn.in_proj[k]": (8, 5),
        "attn.in_proj[v]": (8, 6),
        "attn.out_proj": (8, 8),
    }
    np.testing.assert_array_equal(found["attn.in_proj[k]"].weight, state["attn.k_proj_weight"].double().numpy())
