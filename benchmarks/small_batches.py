"""Per-batch fixed cost: resnet18 at 64x64, 1000 inputs, batch size 32 against 256.

    python benchmarks/small_batches.py [--threads 1] [--repeats 3]

Prints plain inference and satcli (mean pooling, activations stored) at both batch sizes as CPU seconds of
this process (robust on a shared machine; --threads 1 by default so that no OpenMP barrier waits on a
descheduled thread), interleaved, median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _harness as h
import torch
import torchvision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = h.loaded(torchvision.models.resnet18(num_classes=10), "resnet18")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for batch in (32, 256):
            h.BATCH_SIZE = batch
            data = h.random_data(args.inputs, (3, 64, 64), work)
            runs[f"plain/{batch}"] = lambda data=data: h.plain_pass(model, data)
            runs[f"satcli/{batch}"] = lambda data=data: h.satcli_pass(model, data, "mean", True, work)
        for fn in runs.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"resnet18 64x64, {args.inputs} inputs, {args.threads} thread(s), CPU seconds (median of {args.repeats})")
    for batch in (32, 256):
        plain, sat = med[f"plain/{batch}"], med[f"satcli/{batch}"]
        print(f"batch {batch:>3}: plain {plain:6.2f} s  satcli {sat:6.2f} s  ratio {sat / plain:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
