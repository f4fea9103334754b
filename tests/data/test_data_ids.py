"""dtype and shape decide what an array is: uint8 images scaled, (N, T) integer ids kept integer, floats as given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from satcli.data import DataOptions, open_data


def _first_batch(path: Path) -> torch.Tensor:
    batch = next(iter(open_data(str(path), DataOptions(batch_size=4)).iter_batches()))
    assert isinstance(batch.inputs, torch.Tensor)
    return batch.inputs


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint16])
def test_integer_ids_stay_integer(tmp_path: Path, dtype: type) -> None:
    ids = np.random.default_rng(0).integers(0, 1000, size=(6, 5)).astype(dtype)
    np.savez(tmp_path / "ids.npz", x=ids)
    got = _first_batch(tmp_path / "ids.npz")
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), ids[:4].astype(np.int64))


def test_uint8_images_scale_and_floats_stay(tmp_path: Path) -> None:
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10
    np.savez(tmp_path / "u8.npz", x=images)
    np.testing.assert_allclose(_first_batch(tmp_path / "u8.npz").numpy(), images[:4] / 255.0, rtol=1e-6)
    values = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float64)
    np.save(tmp_path / "plain.npy", values)  # a bare .npy array is read too (unlabeled)
    got = _first_batch(tmp_path / "plain.npy")
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), values[:4].astype(np.float32))


class TextNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.emb(ids).mean(dim=1))))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TextNet]:
    torch.manual_seed(0)
    net = TextNet().eval()
    path = tmp_path_factory.mktemp("text") / "text.pt2"
    example = torch.randint(0, 50, (4, 7))
    ep = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, path)
    return path, net


def test_an_embedding_model_runs_on_token_ids(run_cli, tmp_path: Path, text_model) -> None:
    path, net = text_model
    ids = np.random.default_rng(2).integers(0, 50, size=(40, 7))
    np.savez(tmp_path / "ids.npz", x=ids)
    r = run_cli("analyze", path, "--data", tmp_path / "ids.npz", "--no-store", "-f", "json")
    assert r.code == 0, r.stderr
    record = json.loads(r.stdout)
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    fc = w["emb.weight"][ids].mean(axis=1) @ w["fc.weight"].T + w["fc.bias"]  # float64 reference
    eigs = np.clip(np.linalg.eigvalsh(np.cov(fc, rowvar=False))[::-1], 0, None)
    k = int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)
    layer = record["layers"][0]
    assert (layer["name"], layer["samples"], layer["k"]) == ("fc", 40, k)


def test_float_data_on_an_embedding_blames_the_input_not_a_later_layer(run_cli, tmp_path: Path, text_model) -> None:
    path, _ = text_model
    np.savez(tmp_path / "floats.npz", x=np.random.default_rng(3).normal(size=(8, 7)).astype(np.float32))
    r = run_cli("analyze", path, "--data", tmp_path / "floats.npz", "--no-store")
    assert r.code == 2 and "Traceback" not in r.stderr
    assert "failed before any tracked layer ran" in r.stderr
    assert "the archive's input does not match but" not in r.stderr


def test_channels_last_images_get_a_hint(run_cli, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    images = np.load(repo / "satcli/datasets/digits.npz")["images"][:16]
    np.save(tmp_path / "nhwc.npy", np.repeat(images[..., None], 3, axis=-1))  # (N, 8, 8, 3) uint8
    r = run_cli("analyze", repo / "sample_models/sensible.pt2", "--data", tmp_path / "nhwc.npy", "--no-store")
    assert r.code == 2 and "Traceback" not in r.stderr
    assert "the data look channels-last (N, H, W, C)" in r.stderr


def test_grayscale_to_rgb_repeats_the_channel(run_cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()
    ep = torch.export.export(net, (torch.zeros(2, 3, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    model = tmp_path / "rgb.pt2"
    torch.export.save(ep, model)
    grey = np.random.default_rng(4).random((30, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "grey.npy", grey)
    np.save(tmp_path / "repeated.npy", np.repeat(grey, 3, axis=1))
    assert run_cli("analyze", model, "--data", tmp_path / "grey.npy", "--no-store").code == 2
    flag = run_cli("analyze", model, "--data", tmp_path / "grey.npy", "--no-store", "--grayscale-to-rgb", "-f", "json")
    assert flag.code == 0, flag.stderr
    manual = run_cli("analyze", model, "--data", tmp_path / "repeated.npy", "--no-store", "-f", "json")
    got, want = json.loads(flag.stdout)["layers"], json.loads(manual.stdout)["layers"]
    assert [(g["k"], g["samples"]) for g in got] == [(w["k"], w["samples"]) for w in want]
    # and against numpy: the conv layer's channel means on the repeated images, in float64
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    rgb = np.repeat(grey, 3, axis=1).astype(np.float64)
    conv = torch.nn.functional.conv2d(
        torch.from_numpy(rgb), torch.from_numpy(w["0.weight"]), torch.from_numpy(w["0.bias"])
    )
    pooled = conv.mean(dim=(2, 3)).numpy()
    eigs = np.clip(np.linalg.eigvalsh(np.cov(pooled, rowvar=False))[::-1], 0, None)
    assert got[0]["k"] == int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)
