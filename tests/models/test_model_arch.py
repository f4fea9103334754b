"""The architecture registry and device specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import (  # noqa: F401  (net, x, arch_pkg are fixtures)
    ARCH,
    Net,
    arch_pkg,
    install_arch_pkg,
    net,
    x,
)
from torch import nn

from satcli.errors import SatcliError
from satcli.models import (
    build_arch,
    parse_arch_kwargs,
    resolve_device,
)

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
        ("archpkg.nets", "torchvision:NAME, timm:NAME or package.module:callable"),
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


def test_a_bare_torchvision_name_is_accepted() -> None:
    module = build_arch("resnet18", {"num_classes": 7})
    assert isinstance(module, nn.Module) and module.fc.out_features == 7
    with pytest.raises(SatcliError, match="bad architecture"):
        build_arch("resnt18", {})  # neither a torchvision name nor module:factory
