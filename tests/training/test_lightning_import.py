"""The Lightning callback's public import paths, and `import satcli` staying free of lightning."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("lightning.pytorch")


def test_the_callback_imports_from_satcli_lightning_and_from_its_old_path() -> None:
    from satcli.lightning import SaturationCallback
    from satcli.training.lightning import SaturationCallback as Old

    assert SaturationCallback is Old


def test_import_satcli_does_not_import_lightning() -> None:
    probe = "import sys, satcli; satcli.__version__; print(sorted(m for m in sys.modules if 'lightning' in m))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
