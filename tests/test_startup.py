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
