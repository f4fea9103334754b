"""`satcli analyze` on a timm model (state dict and safetensors) and on a Hugging Face ViT through its image
processor: k and covariance against numpy float64 from plain forward hooks on a model built without satcli."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hf_helpers import analyze, assert_matches_reference, hooked_outputs
from safetensors.torch import save_file

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")


def pooled(outputs: dict[str, list[torch.Tensor]]) -> dict[str, np.ndarray]:
    """Per layer (n, d) float64: conv outputs averaged over space, token outputs over tokens, dense as is."""
    result = {}
    for name, outs in outputs.items():
        x = torch.cat(outs).double()
        if x.ndim == 4:
            x = x.mean(dim=(2, 3))
        elif x.ndim == 3:
            x = x.mean(dim=1)
        result[name] = x.numpy()
    return result


@pytest.fixture(scope="session")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """timm resnet18 (10 classes) as a state dict and as safetensors, and 48 random 32x32 inputs."""
    root = tmp_path_factory.mktemp("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10).eval()
    torch.save(model.state_dict(), root / "resnet18.pth")
    save_file(model.state_dict(), root / "resnet18.safetensors")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 32, 32, generator=generator)
    np.savez(root / "inputs.npz", x=x.numpy())
    return {"root": root, "pth": root / "resnet18.pth", "safetensors": root / "resnet18.safetensors"}


def test_timm_resnet18_from_state_dict_and_safetensors(
    run_cli: Callable[..., Any], resnet: dict[str, Path], tmp_path: Path
) -> None:
    model = timm.create_model("resnet18", num_classes=10).eval()
    model.load_state_dict(torch.load(resnet["pth"], weights_only=True))
    x = torch.from_numpy(np.load(resnet["root"] / "inputs.npz")["x"])
    reference = pooled(hooked_outputs(model, list(x.split(16)), (torch.nn.Conv2d, torch.nn.Linear)))
    options = ("--arch", "timm:resnet18", "--arch-kwargs", "num_classes=10", "--batch-size", "20")
    store = tmp_path / "pth.h5"
    record = analyze(run_cli, resnet["pth"], resnet["root"] / "inputs.npz", store, *options)
    assert_matches_reference(record, store, reference)
    assert len(record["layers"]) == 21  # 20 convolutions (3 of them downsampling shortcuts) and the fc
    assert record["model_format"] == "state_dict"
    # The same weights from safetensors (the last block and the head, to keep the test fast).
    store = tmp_path / "st.h5"
    chosen = ("--layers", "layer4.1.*", "--layers", "fc")
    record = analyze(run_cli, resnet["safetensors"], resnet["root"] / "inputs.npz", store, *options, *chosen)
    assert record["model_format"] == "safetensors"
    picked = {name: reference[name] for name in ("layer4.1.conv1", "layer4.1.conv2", "fc")}
    assert_matches_reference(record, store, picked)


def test_vit_classifier_through_its_image_processor(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    from PIL import Image

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
    )
    transformers.ViTForImageClassification(config).eval().save_pretrained(tmp_path / "vit")
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(tmp_path / "vit")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20 + i % 9, 24 + i % 5, 3), dtype=np.uint8)) for i in range(40)]
    labels = ["cat", "dog", "fox", "dog"] * 10
    datasets.Dataset.from_dict({"image": images, "label": labels}).save_to_disk(str(tmp_path / "images"))
    store = tmp_path / "vit.h5"
    record = analyze(run_cli, tmp_path / "vit", tmp_path / "images", store, "--batch-size", "16")

    model = transformers.ViTForImageClassification.from_pretrained(tmp_path / "vit").eval()
    pixels = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]
    outputs = hooked_outputs(model, [{"pixel_values": pixels}], (torch.nn.Linear, torch.nn.Conv2d))
    assert_matches_reference(record, store, pooled(outputs))
    assert record["layers"][0]["type"] == "Conv2d" and record["layers"][-1]["name"] == "classifier"
    assert record["layers"][0]["classes"]["num_classes"] == 3
