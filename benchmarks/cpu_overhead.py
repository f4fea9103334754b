"""satcli over plain inference in CPU seconds of this process, one thread: robust on a shared machine.

    python benchmarks/cpu_overhead.py [--samples 4000] [--model vgg|mlp] [--float32]

Wall-clock ratios (overhead.py) swing by 4x when neighbours load the 2 cores; CPU seconds of a
one-thread run do not wait for descheduled OpenMP threads, so they show the work satcli adds. Runs are
interleaved; the median of 3 rounds after a warm-up is printed as a ratio to plain inference.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _harness as h
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--model", choices=("vgg", "mlp"), default="vgg")
    parser.add_argument("--mlp-width", type=int, default=0, help="MLP 3072-W-W-W-10 instead of 1024-512-256")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--float32", action="store_true", help="also --precision float32")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    h.BATCH_SIZE = args.batch_size
    widths = (args.mlp_width,) * 3 if args.mlp_width else (1024, 512, 256)
    model = h.loaded(h.vgg(4) if args.model == "vgg" else h.mlp(widths), args.model)
    methods = ("mean", "channelwise") if args.model == "vgg" else ("mean",)
    precisions = ("float64", "float32") if args.float32 else ("float64",)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = h.random_data(args.samples, (3, 32, 32), work)
        runs = {"plain": lambda: h.plain_pass(model, data)}
        for method in methods:
            for store in (True, False):
                for precision in precisions:
                    name = f"{method}, {'stored' if store else 'not stored'}, {precision}"
                    runs[name] = lambda m=method, s=store, p=precision: h.satcli_pass(model, data, m, s, work, p)
        for fn in runs.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(3):
            for name, fn in runs.items():
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
    plain = statistics.median(times.pop("plain"))
    label = args.model if args.model == "vgg" else f"mlp 3072-{'-'.join(map(str, widths))}-10"
    print(f"{label}, N = {args.samples}, batch {args.batch_size}, 1 thread: plain {plain:.2f} CPU-s")
    for name, values in times.items():
        print(f"  {name:<36} {statistics.median(values) / plain:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
