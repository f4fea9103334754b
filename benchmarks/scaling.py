"""How satcli's cost grows: wall time and peak memory against N (samples) and layer width.

    python benchmarks/scaling.py [--samples 1000 4000 16000] [--widths 512 1024 2048 4096]

Model: an MLP 256 -> width -> 10 (one wide layer, d x d float64 sums of up to 4096 x 4096 = 128 MiB).
Each configuration runs in a fresh subprocess (so peak memory is its own): a full analysis with stored
activations to a temporary HDF5 file, inputs generated per batch (nothing of size N is held in memory).
The child reports wall time and its peak RSS (resource.getrusage ru_maxrss) before and after the
analysis. Time should grow linearly in N (time/N flat) and peak memory should not grow with N.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness as h
import torch
from torch import nn
from torch.utils.data import Dataset

from satcli.data import DataOptions, DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.store.observer import StoreObserver
from satcli.store.writer import StoreWriter

IN_FEATURES = 256


class _RandomInputs(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Deterministic random inputs made on access, so the data set costs no memory."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(index)
        return torch.randn(IN_FEATURES, generator=g), torch.tensor(index % 10)


def child(samples: int, width: int) -> None:
    """One configuration; prints a JSON line with seconds and peak RSS in MiB."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(IN_FEATURES, width), nn.ReLU(), nn.Linear(width, 10))
    model = h.loaded(module, "mlp")
    options = DataOptions(batch_size=h.BATCH_SIZE)
    data = DataSource("random", "random inputs", _RandomInputs(samples), samples, (IN_FEATURES,), True, options)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with StoreWriter(Path(tmp) / "run.satcli.h5") as store:
            analyze(model, data, AnalysisOptions(), [StoreObserver.of(store, AnalysisOptions())])
        seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_before_mib": before, "peak_rss_mib": after}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--child", type=int, nargs=2, metavar=("N", "WIDTH"), help=argparse.SUPPRESS)
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine before each run")
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    print(f"machine: {h.machine()}")
    print(f"MLP {IN_FEATURES} -> width -> 10, batch {h.BATCH_SIZE}, activations stored, one subprocess per run\n")
    print(
        f"{'width':>5} {'N':>6} {'seconds':>8} {'ms / 1k samples':>16} {'marginal ms / 1k':>17} "
        f"{'peak RSS MiB':>13} {'(at start)':>10}"
    )
    for width in args.widths:
        previous: tuple[int, float] | None = None
        for samples in args.samples:
            if not args.no_wait:
                h.wait_for_quiet()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(samples), str(width)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            got = json.loads(out.strip().splitlines()[-1])
            per_k = got["seconds"] / samples * 1e6
            # Cost of the extra samples over the previous N: the fixed costs (eigenvalues, writing the
            # d x d statistics) cancel, so a flat column means time linear in N.
            marginal = (
                "" if previous is None else f"{(got['seconds'] - previous[1]) / (samples - previous[0]) * 1e6:.1f}"
            )
            previous = (samples, got["seconds"])
            print(
                f"{width:>5} {samples:>6} {got['seconds']:8.2f} {per_k:16.1f} {marginal:>17} "
                f"{got['peak_rss_mib']:13.0f} {got['rss_before_mib']:10.0f}",
                flush=True,
            )
    if h.QUIET_LOG:
        print(f"\nother processes' load before each run: max {max(h.QUIET_LOG):.2f} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
