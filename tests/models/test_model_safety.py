"""Pickles and export archives: refused unless trusted, and never run code when refused."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from model_helpers import (  # noqa: F401  (net, x, arch_pkg are fixtures)
    ARCH,
    Net,
    Trap,
    arch_pkg,
    assert_plain_eval_module,
    assert_same_outputs,
    install_arch_pkg,
    net,
    x,
)

from satcli.errors import SatcliError
from satcli.models import (
    load_model,
)

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


MODULE_SOURCE = """
import torch


class LocalNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def factory():
    return LocalNet()
"""


def _forget(monkeypatch: pytest.MonkeyPatch, name: str, *folders: Path) -> None:
    """Run as the `satcli` script would: the module not imported, no folder of ours on the import path."""
    import sys

    hidden = {"", ".", *(str(f) for f in folders)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in hidden])
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_trusted_pickle_imports_its_class_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    (tmp_path / "localnet_pickle.py").write_text(MODULE_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import localnet_pickle  # type: ignore[import-not-found]

    torch.save(localnet_pickle.LocalNet(), tmp_path / "whole.pt")
    _forget(monkeypatch, "localnet_pickle", tmp_path)
    assert str(tmp_path) not in sys.path
    monkeypatch.chdir(tmp_path)
    loaded = load_model(tmp_path / "whole.pt", trust_pickle=True, device="cpu")
    assert type(loaded.module).__name__ == "LocalNet"
