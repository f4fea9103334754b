"""Start-up cost: --version and --help must not import torch (or numpy/h5py), so shell loops and CI stay fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "h5py", "scipy")

PROBE = """
import sys
from satcli.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("heavy:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["analyze", "--help"], ["check", "--help"]])
def test_version_and_help_import_no_heavy_module(args: list[str]) -> None:
    probe = PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "heavy:"
    assert "satcli" in done.stdout  # the command itself ran and printed


def test_importtime_of_version_lists_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "satcli", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("satcli ")
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "satcli.cli" in imported  # the probe really measured satcli's imports
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_a_pyproject_naming_an_architecture_factory_imports_no_heavy_module(tmp_path) -> None:
    """The configuration puts the pyproject's folder on the import path for a module:factory architecture;
    doing so must not load torch for commands such as `report --help` that never load a model."""
    (tmp_path / "pyproject.toml").write_text('[tool.satcli]\narch = "mymod:make"\n')
    probe = PROBE.format(heavy=HEAVY).replace("print(", "print('folder:' + str(sys.path[0])); print(", 1)
    done = subprocess.run(
        [sys.executable, "-c", probe, "report", "--help"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "heavy:"
    assert f"folder:{tmp_path}" in lines  # the configuration did run and put the folder first
