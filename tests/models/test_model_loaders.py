"""Model loading: every supported format from real files, key/shape mismatches and unreadable files."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from model_helpers import (  # noqa: F401  (net, x, arch_pkg are fixtures)
    ARCH,
    Net,
    Wrap,
    arch_pkg,
    assert_plain_eval_module,
    assert_same_outputs,
    install_arch_pkg,
    net,
    x,
)
from safetensors.torch import save_file

from satcli.errors import SatcliError
from satcli.models import (
    build_arch,
    file_sha256,
    load_model,
    parse_arch_kwargs,
)

# --- formats -------------------------------------------------------------------------------------


def test_export_archive(tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    program = torch.export.export(net, (x[:2],), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    path = tmp_path / "net.pt2"
    torch.export.save(program, path)
    loaded = load_model(path, device="cpu")
    assert loaded.format == "export"
    assert isinstance(loaded.module, torch.fx.GraphModule)
    assert loaded.input_shape == (None, 3, 8, 8)
    assert loaded.arch is None
    assert loaded.device == torch.device("cpu")
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert_same_outputs(loaded, net, x)
    renamed = path.rename(tmp_path / "net.bin")
    assert load_model(renamed, device=torch.device("cpu")).format == "export"


def test_export_archive_refuses_arch(tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,)), path)
    with pytest.raises(SatcliError, match="give no architecture"):
        load_model(path, arch="torchvision:resnet18")


def test_torchscript_without_arch_is_the_script_module(tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.script(net), path)
    loaded = load_model(path)
    assert loaded.format == "torchscript"
    assert isinstance(loaded.module, torch.jit.ScriptModule)
    assert not loaded.module.training
    assert loaded.input_shape is None
    assert_same_outputs(loaded, net, x)


def test_torchscript_with_arch_is_a_plain_module(arch_pkg: Path, tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), path)
    loaded = load_model(path, arch=ARCH)
    assert loaded.format == "torchscript"
    assert loaded.arch == ARCH
    assert type(loaded.module).__name__ == "Small"
    assert_plain_eval_module(loaded)
    assert_same_outputs(loaded, net, x)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: sd, id="bare"),
        pytest.param(lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}, id="lightning"),
        pytest.param(lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}}, id="model_state_dict"),
        pytest.param(lambda sd: {"model": sd}, id="model"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="data_parallel"),
    ],
)
def test_state_dict_layouts(arch_pkg: Path, tmp_path: Path, net: Net, x: torch.Tensor, wrap: Wrap) -> None:
    path = tmp_path / "weights.pth"
    torch.save(wrap(net.state_dict()), path)
    loaded = load_model(path, arch=ARCH, device="cpu")
    assert loaded.format == "state_dict"
    assert_plain_eval_module(loaded)
    assert_same_outputs(loaded, net, x)


def test_format_comes_from_content_not_extension(arch_pkg: Path, tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "misnamed.pt2"
    torch.save(net.state_dict(), path)
    loaded = load_model(path, arch=ARCH)
    assert loaded.format == "state_dict"
    assert_same_outputs(loaded, net, x)


def test_safetensors(arch_pkg: Path, tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "net.safetensors"
    save_file(net.state_dict(), str(path))
    loaded = load_model(path, arch=ARCH)
    assert loaded.format == "safetensors"
    assert_plain_eval_module(loaded)
    assert_same_outputs(loaded, net, x)


def test_torchvision_arch_with_kwargs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "resnet.pt"
    torch.save(reference.state_dict(), path)
    loaded = load_model(path, arch="torchvision:resnet18", arch_kwargs=parse_arch_kwargs(["num_classes=10"]))
    assert loaded.arch == "torchvision:resnet18"
    assert_plain_eval_module(loaded)
    assert_same_outputs(loaded, reference, torch.randn(2, 3, 32, 32))


def test_factory_arch_kwargs_are_passed(arch_pkg: Path) -> None:
    module = build_arch(ARCH, parse_arch_kwargs(["channels=2", "classes=7"]))
    assert module.fc.out_features == 7
    assert module.conv.out_channels == 2


def test_state_dict_without_arch_asks_for_one(tmp_path: Path, net: Net) -> None:
    for path in (tmp_path / "w.pt", tmp_path / "w.safetensors"):
        if path.suffix == ".pt":
            torch.save(net.state_dict(), path)
        else:
            save_file(net.state_dict(), str(path))
        with pytest.raises(SatcliError, match=r"holds a state dict; pass --arch torchvision:NAME"):
            load_model(path)


# --- key and shape mismatches --------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_named(arch_pkg: Path, tmp_path: Path, net: Net) -> None:
    state = net.state_dict()
    state["head.weight"] = state.pop("fc.weight")
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(SatcliError) as info:
        load_model(path, arch=ARCH)
    message = str(info.value)
    assert "missing 1 key: fc.weight" in message
    assert "unexpected 1 key: head.weight" in message
    assert "\n" not in message


def test_many_missing_keys_are_counted(tmp_path: Path, net: Net) -> None:
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(SatcliError, match=r"missing \d+ keys: conv1\.weight, .*more\)"):
        load_model(path, arch="torchvision:resnet18")


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(SatcliError, match=r"fc\.weight is \(10, 512\) in the file but \(1000, 512\) in the model"):
        load_model(path, arch="torchvision:resnet18")


# --- bad files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="is a directory"):
        load_model(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path, net: Net) -> None:
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    path.chmod(0)
    with pytest.raises(SatcliError, match="cannot read"):
        load_model(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.pt", b""),
        ("text.pt", b"hello, I am not a model\n"),
        ("garbage.bin", bytes(range(256)) * 8),
        ("bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all"),
        ("truncated.safetensors", b'\xff\x00\x00\x00\x00\x00\x00\x00{"a": 1}'),
        ("notorch.zip", None),
    ],
)
def test_garbage_files(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hi")
    else:
        path.write_bytes(content)
    with pytest.raises(SatcliError, match=r"cannot read .* as a PyTorch model: \S"):
        load_model(path)


def test_truncated_torch_save(tmp_path: Path, net: Net) -> None:
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(SatcliError, match=r"cannot read .* as a PyTorch model"):
        load_model(path, arch=ARCH)


def test_tensor_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(SatcliError, match="holds a Tensor"):
        load_model(path)


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
