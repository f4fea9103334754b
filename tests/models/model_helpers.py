"""Shared pieces of the model-loading tests: a small net, an importable factory package, a pickle trap."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from satcli.models import (
    FORMATS,
    LoadedModel,
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


def install_arch_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
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
    yield from install_arch_pkg(tmp_path, monkeypatch)
