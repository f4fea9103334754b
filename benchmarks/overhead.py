"""satcli's analysis loop against a plain torch.no_grad() forward loop over the same batches.

    python benchmarks/overhead.py [--samples 10000] [--repeats 3] [--vgg-divisor 4] [--mlp-width 2048]
                                  [--models vgg,mlp,wide] [--conv-methods mean,channelwise]

--vgg-divisor 1 is the full-width VGG11 (64..512 channels).

For a VGG11-style CNN (mean and channelwise reduction) and an MLP, with and without stored activations,
every satcli run is a full ``satcli.pipeline.analyze`` with a StoreWriter to a temporary file (hooks,
reduction, float64 accumulation, eigenvalues, HDF5 store committed). Data: random 32x32x3 inputs opened
through satcli's array-file spec and materialized in memory, so decoding is outside both timings.
Runs are interleaved (plain, satcli A, satcli B, ... per round); the table gives the median over rounds
of each round's ratio to that round's plain loop, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _harness as h
import torch

TARGETS = {("vgg", "mean", True): 1.05, ("vgg", "channelwise", True): 1.25, ("mlp", "mean", True): 2.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg-divisor", type=int, default=4, help="VGG11 widths divided by this (4: 16..128)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine before each run")
    parser.add_argument("--float32", action="store_true", help="also time --precision float32 (channelwise, MLP)")
    parser.add_argument("--batch-size", type=int, default=h.BATCH_SIZE)
    parser.add_argument("--mlp-width", type=int, default=0, help="also an MLP 3072-W-W-W-10 of this width")
    parser.add_argument("--models", default="vgg,mlp,wide", help="which of vgg, mlp (1024-512-256), wide (--mlp-width)")
    parser.add_argument("--conv-methods", default="mean,channelwise", help="VGG reductions to time")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    h.BATCH_SIZE = args.batch_size
    print(f"machine: {h.machine()}")
    print(f"N = {args.samples}, batch {h.BATCH_SIZE}, {args.repeats} interleaved rounds after 1 warm-up round")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = h.random_data(args.samples, (3, 32, 32), work)
        wanted = set(args.models.split(","))
        models = {}
        if "vgg" in wanted:
            models[f"vgg11/{args.vgg_divisor}"] = ("vgg", h.loaded(h.vgg(args.vgg_divisor), "vgg"))
        if "mlp" in wanted:
            models["mlp 3072-1024-512-256-10"] = ("mlp", h.loaded(h.mlp(), "mlp"))
        if args.mlp_width and "wide" in wanted:
            w = args.mlp_width
            models[f"mlp 3072-{w}-{w}-{w}-10"] = ("mlp", h.loaded(h.mlp((w, w, w)), "mlp"))
        for label, (kind, model) in models.items():
            methods = args.conv_methods.split(",") if kind == "vgg" else ["mean"]
            configs = [(m, s, "float64") for m in methods for s in (True, False)]
            if args.float32:
                configs += [("channelwise" if kind == "vgg" else "mean", True, "float32")]
            runs = {"plain": lambda model=model: h.plain_pass(model, data)}
            for method, store, precision in configs:
                runs[f"{method}/{store}/{precision}"] = lambda model=model, m=method, s=store, p=precision: (
                    h.satcli_pass(model, data, m, s, work, p)
                )
            times = h.interleaved(runs, args.repeats, quiet=not args.no_wait)
            plain = times["plain"]
            for method, store, precision in configs:
                got = times[f"{method}/{store}/{precision}"]
                rows.append(
                    (
                        label,
                        method if kind == "vgg" else "-",
                        ("stored" if store else "not stored") + ("" if precision == "float64" else ", float32"),
                        h.median(plain),
                        h.median(got),
                        h.paired_ratio(got, plain),
                        h.ratio_of_medians(got, plain),
                        TARGETS.get((kind, method, store)) if precision == "float64" else None,
                    )
                )
            print(f"  {label}: plain runs {', '.join(f'{t:.2f}' for t in plain)} s", flush=True)
    print()
    print(
        f"{'model':<26} {'conv method':<12} {'activations':<20} {'plain s':>8} {'satcli s':>9} "
        f"{'ratio':>6} {'(of medians)':>12}  target"
    )
    for label, method, store, plain_s, sat_s, paired, of_medians, target in rows:
        verdict = "" if target is None else f"<= {target:.2f} {'met' if paired <= target else 'NOT met'}"
        print(
            f"{label:<26} {method:<12} {store:<20} {plain_s:8.2f} {sat_s:9.2f} "
            f"{paired:6.2f}x {of_medians:11.2f}x  {verdict}"
        )
    if h.QUIET_LOG:
        print(
            f"\nother processes' load before each timed run: max {max(h.QUIET_LOG):.2f} CPUs, "
            f"median {h.median(h.QUIET_LOG):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
