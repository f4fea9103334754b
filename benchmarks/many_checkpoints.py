"""Scoring 20 checkpoints in one `satcli analyze` call versus 20 separate calls.

    python benchmarks/many_checkpoints.py [--checkpoints 20] [--repeats 3]

Makes N perturbed copies of sample_models/sensible.pt2 (weights plus 1% noise, a different seed each, saved as
torch.export archives) in a temp dir, then times, interleaved and as subprocesses like a shell script would:

- one run:   satcli analyze c01.pt2 ... cN.pt2 --data digits --store all.h5 -f jsonl -q
- separate:  N x satcli analyze ci.pt2 --data digits --store ci.h5 -f jsonl -q

and prints the median wall time of each over the repetitions and their ratio. It also checks that both ways
give the same per-layer k for every checkpoint and that the one store holds all N checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from satcli.store.reader import read_store

REPO = Path(__file__).resolve().parent.parent
SENSIBLE = REPO / "sample_models" / "sensible.pt2"
NOISE = 0.01


def make_checkpoints(folder: Path, count: int) -> list[Path]:
    """`count` copies of the sensible CNN, each weight tensor perturbed by NOISE x its std with its own seed."""
    program = torch.export.load(str(SENSIBLE))
    originals = {name: tensor.detach().clone() for name, tensor in program.state_dict.items()}
    paths = []
    for seed in range(1, count + 1):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, tensor in program.state_dict.items():
                base = originals[name]
                noise = torch.randn(base.shape, generator=generator, dtype=base.dtype)
                tensor.copy_(base + NOISE * float(base.std()) * noise)
        path = folder / f"c{seed:02d}.pt2"
        torch.export.save(program, str(path))
        paths.append(path)
    return paths


def satcli(*args: str | Path, cwd: Path) -> str:
    """Run satcli in a fresh process, as a shell script would, and return its stdout."""
    command = [sys.executable, "-m", "satcli", *map(str, args)]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def interleaved(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each run, interleaved (A B A B ...), so a slow spell of the machine hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def machine() -> str:
    """CPU, core count, torch and Python versions, for the printed header."""
    model = platform.processor() or "unknown cpu"
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} cpus, torch {torch.__version__}, python {platform.python_version()}"


def main(count: int, repeats: int) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_checkpoints(folder, count)
        names = [p.name for p in paths]
        common = ("--data", "digits", "-f", "jsonl", "-q")
        outputs: dict[str, list[str]] = {"one": [], "separate": []}

        def one_run() -> None:
            outputs["one"] = satcli("analyze", *names, "--store", "all.h5", *common, cwd=folder).splitlines()

        def separate_runs() -> None:
            outputs["separate"] = [
                satcli("analyze", name, "--store", f"{Path(name).stem}.h5", *common, cwd=folder) for name in names
            ]

        times = interleaved({"one": one_run, "separate": separate_runs}, repeats)

        ks_one = [[layer["k"] for layer in json.loads(line)["layers"]] for line in outputs["one"]]
        ks_separate = [[layer["k"] for layer in json.loads(text)["layers"]] for text in outputs["separate"]]
        assert ks_one == ks_separate, "one run and separate runs disagree"
        _, stored = read_store(folder / "all.h5")
        assert [c.meta.model_path for c in stored] == names, "the store does not hold every checkpoint"
        size = (folder / "all.h5").stat().st_size

    one, separate = statistics.median(times["one"]), statistics.median(times["separate"])
    print(f"{count} checkpoints of sample_models/sensible.pt2 (+{NOISE:.0%} noise), digits test split (599 inputs)")
    print(f"one run ({count} checkpoints, one store of {size / 1e6:.1f} MB): median {one:.1f} s  {_fmt(times['one'])}")
    print(f"{count} separate runs:                               median {separate:.1f} s  {_fmt(times['separate'])}")
    print(f"per checkpoint: {one / count:.2f} s in one run, {separate / count:.2f} s as separate runs")
    paired = statistics.median(b / a for a, b in zip(times["one"], times["separate"], strict=True))
    print(f"ratio separate / one run: {separate / one:.1f}x (medians of {repeats} interleaved repetitions)")
    print(f"median of the per-repetition ratios: {paired:.1f}x")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.checkpoints, args.repeats)
