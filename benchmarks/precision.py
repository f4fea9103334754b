"""Error of --precision float32 against the float64 default, on the sample models and a large-mean layer.

    python benchmarks/precision.py

For each sample model (digits test split) and conv reduction, both precisions run on the same batches;
per layer the relative Frobenius error of the float32 covariance (M2) against float64 and whether k agrees
(at delta 0.99, the default, and 0.9). A synthetic layer with mean 1e4 and unit-scale spread checks the
shifted sums. Written to docs/method.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from satcli.core.accumulator import CovarianceAccumulator
from satcli.core.spectral import eigenvalues, intrinsic_dimension
from satcli.core.state import CheckpointState
from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.models import load_model
from satcli.taps import Reduction

MODELS = Path(__file__).resolve().parent.parent / "sample_models"


class Keep:
    """Observer keeping the final state."""

    wants_rows = False
    state: CheckpointState | None = None

    def started(self, meta: object, layers: Sequence[object]) -> None: ...

    def batch(self, rows: object, labels: object, count: int) -> None: ...

    def finished(self, state: CheckpointState, result: object) -> None:
        self.state = state


def states(model: Path, conv: str) -> dict[str, CheckpointState]:
    loaded = load_model(model, device="cpu")
    data = open_data("digits", DataOptions(split="test"))
    out = {}
    for precision in ("float64", "float32"):
        keep = Keep()
        analyze(loaded, data, AnalysisOptions(reduction=Reduction(conv), precision=precision), [keep])
        assert keep.state is not None
        out[precision] = keep.state
    return out


def _k(values: np.ndarray, delta: float) -> int | None:
    return intrinsic_dimension(values, delta)


def main() -> int:
    worst = 0.0
    mismatches = 0
    print(f"{'model':<12} {'conv':<12} {'layers':>6} {'max rel. error':>15} {'k differs (0.99 / 0.9)':>24}")
    for model in ("narrow", "sensible", "deep_wide"):
        for conv in ("mean", "channelwise"):
            pair = states(MODELS / f"{model}.pt2", conv)
            errors, differ99, differ90 = [], 0, 0
            for a, b in zip(pair["float64"].layers, pair["float32"].layers, strict=True):
                ref, got = np.asarray(a.stats.m2), np.asarray(b.stats.m2)
                errors.append(float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-300)))
                differ99 += _k(a.stats.eigenvalues, 0.99) != _k(b.stats.eigenvalues, 0.99)
                differ90 += _k(a.stats.eigenvalues, 0.9) != _k(b.stats.eigenvalues, 0.9)
            worst = max(worst, max(errors))
            mismatches += differ99
            print(f"{model:<12} {conv:<12} {len(errors):>6} {max(errors):>15.2e} {differ99:>12} / {differ90}")
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(20000, 16)) * np.geomspace(1, 0.01, 16)).astype(np.float32)
    ref = np.cov(x.astype(np.float64), rowvar=False)
    acc = CovarianceAccumulator(16, precision="float32")
    for start in range(0, len(x), 256):
        acc.update(torch.from_numpy(x[start : start + 256]))
    cov = acc.compute()[2].numpy()
    err = float(np.linalg.norm(cov - ref) / np.linalg.norm(ref))
    same = _k(eigenvalues(cov), 0.99) == _k(eigenvalues(ref), 0.99)
    print(f"{'mean 1e4':<12} {'-':<12} {1:>6} {err:>15.2e} {'k same' if same else 'k DIFFERS':>24}")
    print(f"\nworst relative error {max(worst, err):.2e}; layers whose k at 0.99 differs: {mismatches}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
