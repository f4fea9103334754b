"""Calibrate the verdict defaults on the sample models (run: ``python sample_models/calibrate.py``).

Scores the three sample models on the digits test split once, then sweeps the verdict thresholds and
prints which settings give every model its intended verdict (narrow: underparameterized, deep_wide:
overparameterized, sensible: balanced), and how far the defaults sit from the edges of that region.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from satcli.core.verdict import Thresholds, average_saturation, decide, tail  # noqa: E402
from satcli.data import DataOptions, open_data  # noqa: E402
from satcli.engine.options import AnalysisOptions  # noqa: E402
from satcli.engine.run import analyze  # noqa: E402
from satcli.models import load_model  # noqa: E402

EXPECTED = {"narrow": "underparameterized", "deep_wide": "overparameterized", "sensible": "balanced"}
TAIL_THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 9)]
MAX_TAILS = list(range(7))
UNDER_THRESHOLDS = [round(0.05 * i, 2) for i in range(4, 17)]


def main() -> None:
    """Print per-model figures, the valid threshold region, and the defaults' margins."""
    data = open_data("digits", DataOptions(split="test"))
    data.materialize()
    scores = {}
    for name in EXPECTED:
        result = analyze(load_model(HERE / f"{name}.pt2", device="cpu"), data, AnalysisOptions(store_activations=False))
        scores[name] = result.layers
        sats = " ".join(f"{s.saturation:.2f}" for s in result.layers if s.saturation is not None)
        avg = average_saturation(result.layers)
        print(f"{name:10s} average {avg:.3f}  saturations (forward order, output last): {sats}")

    default = Thresholds()
    print("\nvalid (tail_threshold, max_tail) pairs with under_threshold at the default:")
    for tt in TAIL_THRESHOLDS:
        ok = [m for m in MAX_TAILS if _all_right(scores, Thresholds(0.99, tt, m, default.under_threshold))]
        lengths = {name: len(tail(layers, tt)) for name, layers in scores.items()}
        print(f"  tail < {tt:.2f}: max_tail in {ok or 'none'}   tail lengths {lengths}")
    under_ok = [u for u in UNDER_THRESHOLDS if _all_right(scores, Thresholds(0.99, 0.2, 2, u))]
    print(
        f"\nvalid under_threshold values (tail defaults): {under_ok[0]:.2f} .. {under_ok[-1]:.2f}" if under_ok else ""
    )
    print(f"defaults: {default}")


def _all_right(scores: dict, thresholds: Thresholds) -> bool:
    return all(decide(layers, thresholds).label == EXPECTED[name] for name, layers in scores.items())


if __name__ == "__main__":
    main()
