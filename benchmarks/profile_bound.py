"""Where satcli's time goes: one-thread cProfile of one satcli pass, accumulator vs forward pass, in CPU seconds.

    python benchmarks/profile_bound.py [--model vgg|mlp] [--vgg-divisor 1] [--mlp-width 2048] [--samples 256]

Prints the process CPU seconds of a plain forward loop and of satcli's pass (mean or channelwise, no
activations stored) and, from cProfile, the inclusive CPU seconds of CovarianceAccumulator.update (the
float64 shifted Gram update) and its _batch_gram (narrow layers), _update_wide (wide ones) and add_gram
(the GEMMs), the reductions, and the end-of-run eigen-decompositions.
One intra-op thread, so CPU seconds do not wait for descheduled threads on a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import _harness as h
import torch

WATCH = ("update", "_update", "_batch_gram", "_update_wide", "add_gram", "reduce_output", "eigenvalues", "eigvalsh")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vgg", "mlp"), default="vgg")
    parser.add_argument("--vgg-divisor", type=int, default=1)
    parser.add_argument("--mlp-width", type=int, default=2048)
    parser.add_argument("--conv-method", default="channelwise")
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    w = args.mlp_width
    module = h.vgg(args.vgg_divisor) if args.model == "vgg" else h.mlp((w, w, w))
    model = h.loaded(module, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = h.random_data(args.samples, (3, 32, 32), work)
        h.plain_pass(model, data)  # warm-up
        start = time.process_time()
        h.plain_pass(model, data)
        plain = time.process_time() - start
        profile = cProfile.Profile(time.process_time)
        start = time.process_time()
        profile.runcall(h.satcli_pass, model, data, args.conv_method, False, work)
        total = time.process_time() - start
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    label = f"vgg11/{args.vgg_divisor} {args.conv_method}" if args.model == "vgg" else f"mlp 3072-{w}-{w}-{w}-10"
    print(f"{label}, N = {args.samples}, batch {h.BATCH_SIZE}, 1 thread, load {h.busy_cpus():.2f} CPUs")
    print(f"  plain forward loop      {plain:7.2f} CPU-s")
    print(f"  satcli pass (no store)  {total:7.2f} CPU-s  ({total / plain:.2f}x)")
    for (file, line, name), (_cc, calls, _tt, cum, _callers) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if (name in WATCH and "satcli" in file) or name in ("eigvalsh", "eigh"):
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}"
            print(f"  {name:<22} {cum:7.2f} CPU-s  {calls:6d} calls  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
