"""satcli against delve's SaturationTracker at matching settings: time ratio and whether the numbers agree.

    pip install delve==0.1.50   # benchmark-only; if it pulls another torch: pip install --no-deps delve==0.1.50
                                # tqdm pandas tensorboardX protobuf
    python benchmarks/delve_compare.py [--samples 10000] [--repeats 3]

Matching work: the same model and batches, conv method mean / channelwise, delta 0.99, float64
covariance, computation on the CPU, no activations stored by either (delve cannot store them) and
eigenvalues at the end. delve 0.1.50 has a bug: every batch replaces its covariance matrix, so it ends
with the last batch only. The table prints its sample count next to satcli's instead of hiding it, and
compares delve's k with satcli's k on the whole data and with satcli's k on that same last batch (the
only data delve really used). delve also returns k - 1 when the share at k - 1 is within 0.02 of delta.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import _harness as h
import numpy as np
import torch
from torch import nn

from satcli.core.spectral import eigenvalues, intrinsic_dimension
from satcli.taps import Reduction, open_taps, reduce_output

try:
    import delve
    from delve import SaturationTracker
    from delve.metrics import compute_intrinsic_dimensionality
except ImportError:  # pragma: no cover - depends on the environment
    delve = None


def delve_pass(module: nn.Module, data: object, method: str, workdir: Path) -> dict[str, tuple[int, int]]:
    """One delve run on a fresh copy of the model: {layer: (samples in its covariance, k)}."""
    model = copy.deepcopy(module).eval()
    tracker = SaturationTracker(
        str(workdir / "delve"), save_to="csv", modules=model, device="cpu", conv_method=method, stats=["lsat"]
    )
    with torch.no_grad():
        for x, _y in data.batches():
            model(x)
    result = {}
    for name, cov in tracker.logs["eval-covariance-matrix"].items():
        result[name] = (int(cov._tlen), int(compute_intrinsic_dimensionality(cov.fix(), 0.99)))
    tracker.add_saturations(save=False)  # delve's own end-of-epoch computation (eigendecompositions), timed
    tracker.close()
    return result


def last_batch_k(module: nn.Module, data: object, method: str) -> dict[str, int]:
    """satcli's k on the last batch alone (what delve's covariance actually holds)."""
    x = list(data.batches())[-1][0]
    result = {}
    with open_taps(module) as taps:
        for layer, out in taps.forward(x):
            rows = reduce_output(out, layer, Reduction(conv_method=method)).to(torch.float64).numpy()
            cov = np.cov(rows, rowvar=False) if rows.shape[0] > 1 else np.zeros((rows.shape[1],) * 2)
            result[layer.name] = intrinsic_dimension(eigenvalues(cov), 0.99)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg-divisor", type=int, default=4)
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine before each run")
    args = parser.parse_args(argv)
    if delve is None:
        print(
            "delve is not installed, so there is nothing to compare against. Install it (benchmark-only):\n"
            "  pip install delve==0.1.50\n"
            "or, if that would replace your torch:\n"
            "  pip install --no-deps delve==0.1.50 tqdm pandas tensorboardX protobuf"
        )
        return 0
    torch.manual_seed(0)
    print(f"machine: {h.machine()}, delve {getattr(delve, '__version__', '?')}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = h.random_data(args.samples, (3, 32, 32), work)
        model = h.loaded(h.vgg(args.vgg_divisor), "vgg")
        print(f"vgg11/{args.vgg_divisor}, N = {args.samples}, batch {h.BATCH_SIZE}, {args.repeats} interleaved rounds")
        for method in ("mean", "channelwise"):
            found: dict[str, object] = {}
            runs = {
                "satcli": lambda m=method, f=found: f.__setitem__("satcli", h.satcli_pass(model, data, m, False, work)),
                "satcli, saturation only": lambda m=method: h.satcli_pass(model, data, m, False, work, classes=False),
                "delve": lambda m=method, f=found: f.__setitem__("delve", delve_pass(model.module, data, m, work)),
            }
            times = h.interleaved(runs, args.repeats, quiet=not args.no_wait)
            ratio = h.paired_ratio(times["satcli"], times["delve"])
            alone = h.paired_ratio(times["satcli, saturation only"], times["delve"])
            print(
                f"\n--conv-method {method}: satcli {h.median(times['satcli']):.2f} s, delve "
                f"{h.median(times['delve']):.2f} s, satcli/delve = {ratio:.2f}x; saturation only (no class "
                f"spectra, delve's work) {h.median(times['satcli, saturation only']):.2f} s = {alone:.2f}x"
            )
            ours = found["satcli"].layers
            theirs = list(found["delve"].values())  # delve names layers by path with '-'; same forward order here
            last = last_batch_k(model.module, data, method)
            print(
                f"{'layer':<6} {'width':>5} {'satcli n':>9} {'delve n':>8} {'satcli k':>8} {'delve k':>7} "
                f"{'satcli k, last batch':>20}  agree"
            )
            for score, (n_delve, k_delve) in zip(ours, theirs, strict=True):
                k_last = last[score.name]
                if k_delve == score.k:
                    agree = "yes"
                elif k_delve == k_last:
                    agree = "on the last batch"
                elif k_delve == k_last - 1:
                    agree = "on the last batch, less delve's k-1 rule"
                else:
                    agree = "no"
                print(
                    f"{score.name:<6} {score.width:>5} {score.samples:>9} {n_delve:>8} {score.k!s:>8} {k_delve:>7} "
                    f"{k_last:>20}  {agree}"
                )
    if h.QUIET_LOG:
        print(
            f"\nother processes' load before each timed run: max {max(h.QUIET_LOG):.2f} CPUs, "
            f"median {h.median(h.QUIET_LOG):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
