"""Seed 001's claim checked: are the layers the receptive field puts past the border the measured tail?

    python benchmarks/rf_border.py [--samples 300]

For each model and small input size, prints the layers past the border (r_min > size, from `satcli rf`'s
graph computation; the output layer left out, as the verdict leaves it out) and the measured saturation tail
at that size (`analyze --input-size`, default thresholds), and whether every border layer is in the tail.
Models: the sample CNN (sample_models, trained on 8x8 digits, its state dict) and torchvision resnet18 and
vgg11 at random initialisation (seed 0). Data: the embedded digits, upsampled/downsampled to each size
(bilinear, antialiased), grey repeated to RGB for the torchvision models. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torchvision

from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.resolution import agreement, resolution_sweep
from satcli.models import load_model

REPO = Path(__file__).resolve().parent.parent
CASES = (
    ("sensible (trained)", REPO / "sample_models" / "sensible_state_dict.pt", "sample_models.architectures:sensible",
     False, ((4,), (6,), (8,))),
    ("resnet18 (random)", None, "torchvision:resnet18", True, ((16,), (32,))),
    ("vgg11 (random)", None, "torchvision:vgg11", True, ((32,), (64,))),
)  # fmt: skip


def run(samples: int) -> list[str]:
    """One line per (model, size): border layers, tail, and whether the claim holds there."""
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        for label, path, arch, rgb, sizes in CASES:
            if path is None:
                torch.manual_seed(0)
                name = arch.split(":")[1]
                path = Path(folder) / f"{name}.pt"
                torch.save(getattr(torchvision.models, name)().state_dict(), path)
            source = open_data("digits", DataOptions(max_samples=samples, grayscale_to_rgb=rgb))
            results, _ = resolution_sweep(
                path, source, sizes, AnalysisOptions(store_activations=False), lambda p, a=arch: load_model(p, arch=a)
            )
            for item in results:
                found = agreement(item)
                if found is None:
                    continue
                size = "x".join(map(str, item.size))
                lines.append(
                    f"{label} @ {size}: {len(found.both)} of {len(found.border)} border layers in the tail "
                    f"(tail {len(found.tail)} layers); border {list(found.border)}; tail {list(found.tail)}; "
                    f"{'holds' if found.holds else 'does not hold'}"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    for line in run(args.samples):
        print(line, flush=True)


if __name__ == "__main__":
    main()
