"""Model loading: every supported format from real files, and every way a user's input can be refused."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from satcli.errors import SatcliError
from satcli.models import (
    FORMATS,
    LoadedModel,
    build_arch,
    file_sha256,
    load_model,
    parse_arch_kwargs,
    resolve_device,
)

ARCH = "archpkg.nets:make"
Wrap = Callable[[dict[str, torch.Tensor]], object]
ARCH_SOURCE = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, channels: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.fc = nn.Linear(channels * 6 * 6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make(**kwargs: object) -> nn.Module:
    return Small(**kwargs)


def not_a_module() -> int:
    return 42
"""


class Net(nn.Module):
    """The same Conv2d + Linear shape as the factory's Small, so files from one load into the other."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def plant_marker(path: str) -> str:
    """What a booby-trapped pickle runs on load: leaves evidence that code was executed."""
    Path(path).write_text("pwned")
    return path


class Trap:
    """Unpickling this calls plant_marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (plant_marker, (str(self.marker),))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 8, 8)


@pytest.fixture
def arch_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `archpkg.nets` in the working directory, importable only because load adds the cwd."""
    package = tmp_path / "archpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(ARCH_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    for name in ("archpkg", "archpkg.nets"):
        sys.modules.pop(name, None)
    yield tmp_path
    for name in ("archpkg", "archpkg.nets"):
        sys.modules.pop(name, None)


def assert_same_outputs(loaded: LoadedModel, reference: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), reference(x))


def assert_plain_eval_module(loaded: LoadedModel) -> None:
    assert isinstance(loaded.module, nn.Module)
    assert not isinstance(loaded.module, torch.jit.ScriptModule)
    assert not loaded.module.training
    assert loaded.format in FORMATS


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
    with pytest.raises(SatcliError, match="drop --arch"):
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


# --- pickles -------------------------------------------------------------------------------------


def test_pickled_module_refused_without_trust(tmp_path: Path, net: Net) -> None:
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(
        SatcliError,
        match=r"is a pickled Python object \(.*Net\), which can run arbitrary code.*--trust-pickle",
    ):
        load_model(path)


def test_pickled_module_loaded_with_trust(tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "whole.pt"
    torch.save(net.train(), path)
    loaded = load_model(path, trust_pickle=True)
    net.eval()
    assert loaded.format == "pickle"
    assert_plain_eval_module(loaded)
    assert_same_outputs(loaded, net, x)


def test_trusted_pickle_with_model_key_and_arch(arch_pkg: Path, tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": net, "epoch": 1}, path)
    loaded = load_model(path, trust_pickle=True, arch=ARCH)
    assert loaded.format == "pickle"
    assert type(loaded.module).__name__ == "Small"
    assert_same_outputs(loaded, net, x)


def test_trusted_pickle_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "obj.pt"
    torch.save({"config": Path("x")}, path)
    with pytest.raises(SatcliError, match=r"not a torch\.nn\.Module"):
        load_model(path, trust_pickle=True)


@pytest.mark.parametrize("saver", ["torch.save", "pickle.dump"])
def test_booby_trapped_pickle_never_runs(tmp_path: Path, saver: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "trap.pt"
    if saver == "torch.save":
        torch.save({"weights": Trap(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(SatcliError, match="pickled Python object"):
        load_model(path)
    assert not marker.exists()
    # The trap is real: trusting the file runs it.
    with pytest.raises(SatcliError):
        load_model(path, trust_pickle=True)
    assert marker.exists()


def test_booby_trapped_export_archive_never_runs(tmp_path: Path, net: Net, x: torch.Tensor) -> None:
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(net, (x,)), good)
    marker = tmp_path / "marker"
    trap = io.BytesIO()
    torch.save((Trap(marker),), trap)
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for name in source.namelist():
            target.writestr(name, trap.getvalue() if "sample_inputs" in name else source.read(name))
    with pytest.raises(SatcliError, match=r"pickled Python objects.*sample_inputs"):
        load_model(bad)
    assert not marker.exists()


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


# --- arch building -------------------------------------------------------------------------------


def test_unknown_torchvision_name_suggests_close_matches() -> None:
    with pytest.raises(SatcliError, match="resnet18"):
        build_arch("torchvision:resnt18", {})


def test_torchvision_never_downloads_weights() -> None:
    with pytest.raises(SatcliError, match="download"):
        build_arch("torchvision:resnet18", {"pretrained": True})
    with pytest.raises(SatcliError, match="download"):
        build_arch("torchvision:resnet18", {"weights": "DEFAULT"})
    assert isinstance(build_arch("torchvision:resnet18", {"pretrained": False}), nn.Module)


def test_torchvision_bad_kwarg() -> None:
    with pytest.raises(SatcliError, match="cannot build torchvision:resnet18"):
        build_arch("torchvision:resnet18", {"num_clases": 10})


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("no_such_pkg_xyz.nets:make", "cannot import"),
        ("archpkg.nets:missing", "has no attribute"),
        ("archpkg.nets:not_a_module", "not a torch.nn.Module"),
        ("archpkg.nets", "torchvision:NAME or package.module:callable"),
    ],
)
def test_factory_errors(arch_pkg: Path, arch: str, message: str) -> None:
    with pytest.raises(SatcliError, match=message):
        build_arch(arch, {})


def test_factory_call_error(arch_pkg: Path) -> None:
    with pytest.raises(SatcliError, match="failed: TypeError"):
        build_arch(ARCH, {"depth": 3})


def test_parse_arch_kwargs() -> None:
    items = ["num_classes=10", "pretrained=False", "name='x'", "mode=fast", "sizes=(1, 2)"]
    parsed = parse_arch_kwargs(items)
    assert parsed == {"num_classes": 10, "pretrained": False, "name": "x", "mode": "fast", "sizes": (1, 2)}
    for bad in (["num_classes"], ["=3"], ["a=1", "a=2"]):
        with pytest.raises(SatcliError):
            parse_arch_kwargs(bad)


# --- devices -------------------------------------------------------------------------------------


def test_resolve_device_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_resolve_device_cuda_unavailable(spec: str) -> None:
    with pytest.raises(SatcliError, match="CUDA is not available"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:x", ""])
def test_resolve_device_unknown(spec: str) -> None:
    with pytest.raises(SatcliError, match="unknown device"):
        resolve_device(spec)
