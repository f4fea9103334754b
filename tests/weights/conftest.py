"""Fixtures for the data-free analyses: a small MLP trained on digits, and the sample CNN in every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from sample_models.architectures import MLP, sensible
from satcli.models import load_model

REPO = Path(__file__).resolve().parents[2]
SENSIBLE_ARCH = "sample_models.architectures:sensible"
HIDDEN = (64, 64, 64)


def digits_mlp(seed: int) -> MLP:
    """A fresh MLP 64 -> 64 -> 64 -> 64 -> 10 at PyTorch's default initialisation."""
    torch.manual_seed(seed)
    return MLP(list(HIDDEN))


@pytest.fixture(scope="session")
def trained_mlp() -> MLP:
    """The digits MLP after 150 full-batch Adam steps on the whole digits set (about a second)."""
    data = np.load(REPO / "satcli" / "datasets" / "digits.npz")
    x = torch.as_tensor(data["images"], dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(data["labels"])
    model = digits_mlp(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend on a shared machine (0.3 s vs 13 s)
    try:
        for _ in range(150):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def sensible_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample CNN as .pt2 (committed), state dict (committed), safetensors and TorchScript."""
    folder = tmp_path_factory.mktemp("sensible")
    state = torch.load(REPO / "sample_models" / "sensible_state_dict.pt", weights_only=True)
    net = sensible()
    net.load_state_dict(state)
    net.eval()
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "sensible.safetensors")
    torch.jit.script(net).save(folder / "sensible.torchscript.pt")
    return {
        "export": REPO / "sample_models" / "sensible.pt2",
        "state_dict": REPO / "sample_models" / "sensible_state_dict.pt",
        "safetensors": folder / "sensible.safetensors",
        "torchscript": folder / "sensible.torchscript.pt",
    }


def loaded_module(path: Path, arch: str | None = None) -> nn.Module:
    """The module satcli loads from a file."""
    return load_model(path, arch=arch, device="cpu").module
