"""Training with satcli.Monitor attached against the same training loop without it.

    python benchmarks/monitor_overhead.py [--samples 2560] [--repeats 3] [--vgg-divisor 4] [--no-wait]

One epoch of SGD (forward, cross-entropy, backward, step) of the benchmark CNN (the VGG11-style net of
_harness.py, widths divided by 4) on random 32x32x3 inputs held in memory, batch 256. Both variants start
every round from the same weights. The Monitor variant attaches passive hooks (mean reduction, float64
covariance of every Conv2d/Linear output) and calls compute() at the end, as a per-epoch checkpoint would
(without the HDF5 write). Runs are interleaved; printed: the median over rounds of each round's ratio, and
the ratio of the medians. Target (issue 10): <= 1.10x.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import _harness as h
import torch
import torch.nn.functional as F
from torch import nn

import satcli

TARGET = 1.10


def train_epoch(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], monitor: bool) -> None:
    """One epoch of plain SGD on a fresh copy of `model`, optionally watched by a Monitor."""
    net = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    watcher = satcli.Monitor(net).attach() if monitor else None
    for x, y in batches:
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if watcher is not None:
        watcher.detach()
        watcher.compute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2560)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg-divisor", type=int, default=4, help="VGG11 widths divided by this (4: 16..128)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine before each run")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"machine: {h.machine()}")
    print(f"N = {args.samples}, batch {h.BATCH_SIZE}, {args.repeats} interleaved rounds after 1 warm-up round")
    with tempfile.TemporaryDirectory() as tmp:
        data = h.random_data(args.samples, (3, 32, 32), Path(tmp))
        batches = list(data.batches())
    model = h.vgg(args.vgg_divisor)
    runs = {
        "plain": lambda: train_epoch(model, batches, monitor=False),
        "monitor": lambda: train_epoch(model, batches, monitor=True),
    }
    times = h.interleaved(runs, args.repeats, quiet=not args.no_wait)
    paired = h.paired_ratio(times["monitor"], times["plain"])
    medians = h.ratio_of_medians(times["monitor"], times["plain"])
    verdict = "met" if paired <= TARGET else "NOT met"
    print(f"{'model':<12} {'plain s':>8} {'monitor s':>10} {'ratio':>7} {'(of medians)':>13}  target")
    print(
        f"vgg11/{args.vgg_divisor:<6} {h.median(times['plain']):8.2f} {h.median(times['monitor']):10.2f} "
        f"{paired:6.2f}x {medians:12.2f}x  <= {TARGET:.2f} {verdict}"
    )
    if h.QUIET_LOG:
        print(
            f"highest load other processes put on the machine at the start of a timed run: {max(h.QUIET_LOG):.2f} CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
