"""benchmarks/transformer_growth.py runs end to end in its tiny mode: a real build, plain inference and satcli run.

Nothing here checks a time; the table's columns, its derived columns against its own measured ones, the moments
against the GPT-2 block's layer widths, and the line printed when there is no GPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "transformer_growth.py"
NO_GPU = "GPU: not available on this machine (torch.cuda.is_available() is False)"
COLUMNS = [
    "case",
    "device",
    "tokens",
    "plain s",
    "satcli s",
    "ratio",
    "plain RSS",
    "satcli RSS",
    "above plain",
    "moments",
    "passes",
    "store",
    "GPU peak",
    "load",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The script as a user runs it, importing this checkout's satcli."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_tiny_token_series_prints_the_table_and_the_gpu_line() -> None:
    done = run("--tiny", "--series", "tokens", "--gpu")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    if not torch.cuda.is_available():
        assert NO_GPU in lines
    header = lines.index(next(line for line in lines if line.lstrip().startswith("case")))
    assert lines[header - 1].startswith("token series at width 32; 1 block(s), MLP = 1 x width")
    assert cells(lines[header]) == COLUMNS
    rows = [dict(zip(COLUMNS, cells(line), strict=True)) for line in lines[header + 1 :] if "tokens 200" in line]
    assert [row["device"] for row in rows] == (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    row = rows[0]
    assert row["tokens"] == "200"  # 10 texts x 20 words, one token a word
    plain, satcli = float(row["plain s"]), float(row["satcli s"])
    assert float(row["ratio"].rstrip("x")) == pytest.approx(
        satcli / plain, abs=0.01 + 0.05 / plain + 0.05 * satcli / plain**2
    )
    assert int(row["above plain"]) == pytest.approx(int(row["satcli RSS"]) - int(row["plain RSS"]), abs=1)
    # One GPT-2 block of width 32, MLP 32: c_attn (3 x 32 wide: fused q, k, v), attn.c_proj, mlp.c_fc, mlp.c_proj.
    assert float(row["moments"]) == round(8 * (96**2 + 3 * 32**2) / 2**20, 1)
    assert row["passes"] == "1" and float(row["store"]) > 0 and row["GPU peak"] == "-"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_cuda_without_a_gpu_is_refused_in_one_line() -> None:
    done = run("--tiny", "--device", "cuda")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --device cuda: {NO_GPU}"
    assert done.stdout == ""
