"""The trajectory summary of `satcli report` on real short training runs, against an independent recomputation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.linalg
from training_runs import TrainedRun, trained_runs

from satcli.core.trajectory import TrajectoryRule, summarize
from satcli.core.verdict import ThresholdOverrides
from satcli.errors import SatcliError
from satcli.store.rescore import rescore_refs


@pytest.fixture(scope="session")
def trained() -> dict[str, TrainedRun]:
    """The narrow and wide training runs (trained once per session, see training_runs.py)."""
    return trained_runs()


def _saturations(store: Path) -> list[list[float]]:
    """Per checkpoint, each layer's k / d from scipy eigenvalues of the stored covariance (delta 0.99)."""
    out = []
    with h5py.File(store, "r") as f:
        for key in sorted(f["checkpoints"], key=int):
            layers = f["checkpoints"][key]["layers"]
            row = []
            for index in sorted(layers, key=int):
                group = layers[index]
                cov = group["m2"][()] / (int(group.attrs["samples"]) - 1)
                eigs = np.clip(scipy.linalg.eigvalsh(cov)[::-1], 0, None)
                k = int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), 0.99 - 1e-12) + 1)
                row.append(k / cov.shape[0])
            out.append(row)
    return out


def _reference(
    store: Path, tolerance: float = 0.02, window: int = 3, early: int = 2
) -> tuple[list[float], bool, int | None]:
    """Averages (output layer not counted), the early flag at 45% and the settled step, by the documented rule."""
    sat = np.array(_saturations(store))[:, :-1]
    averages = sat.mean(axis=1).tolist()
    flag = all(a >= 0.45 for a in averages[:early])
    moves = np.abs(np.diff(sat, axis=0)).max(axis=1)
    settled = next((s for s in range(len(moves) - window + 1) if (moves[s:] < tolerance).all()), None)
    return averages, flag, settled


@pytest.mark.parametrize("name", ["narrow", "wide"])
def test_summary_matches_the_rule(trained: dict, name: str) -> None:
    store = trained[name].store
    results = [result for _, result in rescore_refs([str(store)], ThresholdOverrides())]
    for rule in (TrajectoryRule(), TrajectoryRule(tolerance=0.1, window=2, early_checkpoints=3)):
        summary = summarize(results, rule)
        averages, flag, settled = _reference(store, rule.tolerance, rule.window, rule.early_checkpoints)
        assert summary.averages == pytest.approx(averages, abs=1e-12)
        assert summary.early_underparameterized is flag
        assert summary.settled_step == settled  # steps are 0, 1, ... (the Monitor's step = epoch)


def test_narrow_is_flagged_early_and_wide_is_not(trained: dict, run_cli: Callable) -> None:
    narrow = run_cli("report", trained["narrow"].store)
    wide = run_cli("report", trained["wide"].store)
    assert narrow.code == wide.code == 0
    assert "underparameterized early: average saturation >= 45.0% in each of the first 2 checkpoints" in narrow.stdout
    assert "early flag  none" in wide.stdout
    for out, run in ((narrow, "narrow"), (wide, "wide")):
        _, _, settled = _reference(trained[run].store)
        expected = "not settled" if settled is None else f"saturation settled at step {settled}"
        assert expected in out.stdout
        assert "rule        early: average >= under threshold" in out.stdout


def test_one_checkpoint_has_no_summary_and_bad_rules_fail(trained: dict, run_cli: Callable) -> None:
    store = trained["wide"].store
    one = run_cli("report", f"{store}:0002")
    assert one.code == 0 and "trajectory" not in one.stdout
    bad = run_cli("report", store, "--settle-tolerance", "0")
    assert bad.code == 2 and "tolerance" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(SatcliError, match="two checkpoints"):
        summarize([])
