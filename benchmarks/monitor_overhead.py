"""Training with satcli.Monitor attached against the same training loop without it.

    python benchmarks/monitor_overhead.py [--samples 2560] [--repeats 3] [--vgg-divisor 4] [--no-wait]

One epoch of SGD (forward, cross-entropy, backward, step) of the benchmark CNN (the VGG11-style net of
_harness.py, widths divided by 4) on random 32x32x3 inputs held in memory, batch 256. Both variants start
every round from the same weights. The Monitor variant attaches passive hooks (mean reduction, float64
covariance of every Conv2d/Linear output). Runs are interleaved; printed: the median over rounds of each
round's ratio, and the ratio of the medians, for wall time and for this process' CPU time (less disturbed
by other processes on a shared machine). Target (issue 10): <= 1.10x. Separately, the time of one
compute() (eigenvalues of every layer, what each per-epoch checkpoint adds once, before its HDF5 write).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _harness as h
import torch
import torch.nn.functional as F
from torch import nn

import satcli

TARGET = 1.10


def train_epoch(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], monitor: bool
) -> satcli.Monitor | None:
    """One epoch of plain SGD on a fresh copy of `model`, optionally watched by a Monitor (returned)."""
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
    return watcher


def timed(runs: dict[str, Callable[[], object]], repeats: int, quiet: bool) -> dict[str, list[tuple[float, float]]]:
    """(wall, process CPU) seconds of each run, interleaved, after one untimed warm-up round."""
    for fn in runs.values():
        fn()
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            if quiet:
                h.wait_for_quiet()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2560)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg-divisor", type=int, default=4, help="VGG11 widths divided by this (4: 16..128)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine before each run")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {h.machine()}")
    print(
        f"N = {args.samples}, batch {h.BATCH_SIZE}, {args.repeats} interleaved rounds after 1 warm-up round, "
        f"vgg11/{args.vgg_divisor}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = h.random_data(args.samples, (3, 32, 32), Path(tmp))
        batches = list(data.batches())
    model = h.vgg(args.vgg_divisor)
    runs = {
        "plain": lambda: train_epoch(model, batches, monitor=False),
        "monitor": lambda: train_epoch(model, batches, monitor=True),
    }
    times = timed(runs, args.repeats, quiet=not args.no_wait)
    print(f"{'clock':<6} {'plain s':>8} {'monitor s':>10} {'ratio':>7} {'(of medians)':>13}  target")
    for index, clock in enumerate(("wall", "cpu")):
        plain = [t[index] for t in times["plain"]]
        watched = [t[index] for t in times["monitor"]]
        paired = h.paired_ratio(watched, plain)
        verdict = "met" if paired <= TARGET else "NOT met"
        print(
            f"{clock:<6} {statistics.median(plain):8.2f} {statistics.median(watched):10.2f} {paired:6.2f}x "
            f"{h.ratio_of_medians(watched, plain):12.2f}x  <= {TARGET:.2f} {verdict}"
        )
    watcher = train_epoch(model, batches, monitor=True)
    assert watcher is not None
    costs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        watcher.compute()
        costs.append(time.perf_counter() - start)
    print(f"one compute() (per checkpoint, {len(watcher.compute().layers)} layers): {statistics.median(costs):.3f} s")
    if h.QUIET_LOG:
        print(
            f"highest load other processes put on the machine at the start of a timed run: {max(h.QUIET_LOG):.2f} CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
