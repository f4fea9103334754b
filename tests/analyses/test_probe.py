"""Linear probes per layer (docs/method.md sec. 9) against scikit-learn's Ridge on the hook activations (float64),
and fitted from merged shard stores exactly as from one pass."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS
from sklearn.linear_model import Ridge
from torch import nn

from satcli.analyses.probe import ProbeAnalysis
from satcli.analyses.score import score_state
from satcli.core.probe import fit_probe
from satcli.engine.evaluate import evaluation_pass
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.engine.sweep import StateObserver
from satcli.store.reader import read_store
from satcli.training.adapters import PythonBatches, loaded_module

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
CLASSES = 4


def _model() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, CLASSES))


def _data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy class clusters: probes are right often but not always (accuracies strictly between 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, 6, generator=torch.Generator().manual_seed(0)) * 1.5
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return centres[y] + torch.randn(n, 6, generator=g), y


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(x.split(37), y.split(37), strict=True))


def _hooked(model: nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Each Linear's output for every input, float64."""
    seen: dict[int, list[np.ndarray]] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, k=k: seen.setdefault(k, []).append(o.detach().double().numpy()))
        for k, m in enumerate(model)
        if isinstance(m, nn.Linear)
    ]
    with torch.no_grad():
        for part in x.split(37):
            model(part)
    for handle in handles:
        handle.remove()
    return [np.concatenate(seen[k]) for k in sorted(seen)]


def _sklearn(rows: np.ndarray, y: np.ndarray, ridge: float) -> Ridge:
    n, d = rows.shape
    sigma = np.cov(rows, rowvar=False, bias=True)
    return Ridge(alpha=ridge * np.trace(sigma) / d * n, fit_intercept=True).fit(rows, np.eye(CLASSES)[y])


@pytest.mark.parametrize("ridge", [1e-3, 0.5])
def test_accuracies_weights_and_bias_equal_sklearn_ridge(ridge: float) -> None:
    model = _model()
    (fx, fy), (ex, ey) = _data(1, 300), _data(2, 200)
    capture = StateObserver()
    options = AnalysisOptions(
        store_activations=False, analyses=(f"probe:ridge={ridge}",), eval_data=PythonBatches(_batches(ex, ey))
    )
    result = analyze(loaded_module(model), PythonBatches(_batches(fx, fy)), options, [capture])
    assert capture.state is not None
    fit_rows, eval_rows = _hooked(model, fx), _hooked(model, ex)
    accuracies = []
    for layer, state, rows, test in zip(result.layers, capture.state.layers, fit_rows, eval_rows, strict=True):
        reference = _sklearn(rows, fy.numpy(), ridge)
        want = float(np.mean(np.argmax(reference.predict(test), axis=1) == ey.numpy()))
        probe = layer.extras["probe"]
        assert probe["accuracy"] == want and 0.3 < want < 1.0
        assert (probe["ridge"], probe["n_fit"], probe["n_eval"]) == (ridge, 300, 200)
        fit = fit_probe(state.stats, state.extras["classes"], ridge)
        scale = np.abs(reference.coef_).max()
        np.testing.assert_allclose(fit.weight, reference.coef_.T, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(
            fit.bias, reference.intercept_, rtol=0, atol=1e-8 * np.abs(reference.intercept_).max()
        )
        accuracies.append(want)
    gains = [layer.extras["probe"]["gain"] for layer in result.layers]
    assert gains[0] is None and gains[1:] == pytest.approx(np.diff(accuracies).tolist(), abs=1e-15)


def test_without_eval_data_the_fit_data_are_evaluated_and_one_pass_sources_refused() -> None:
    from satcli.errors import DataError

    model = _model()
    fx, fy = _data(1, 120)
    options = AnalysisOptions(store_activations=False, analyses=("probe",))
    with pytest.raises(DataError, match="no inputs"):  # Python batches are read once
        analyze(loaded_module(model), PythonBatches(_batches(fx, fy)), options)
    with pytest.raises(DataError, match="carry no labels"):
        unlabelled = PythonBatches(list(fx.split(40)))
        analyze(loaded_module(model), PythonBatches(_batches(fx, fy)), _with_eval(options, unlabelled))


def _with_eval(options: AnalysisOptions, data: object) -> AnalysisOptions:
    from dataclasses import replace

    return replace(options, eval_data=data)


def run(*args: str) -> str:
    from satcli.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 0
    return buffer.getvalue()


def test_shards_merged_fit_the_probe_of_one_pass(tmp_path: Path) -> None:
    # --keep-moments: the fits below need the stores' m2 (the merged store keeps it when its parts' runs asked)
    base = ("analyze", str(SENSIBLE), "--data", "digits", "--analysis", "probe", "--keep-moments", "-q", "-f", "json")
    whole = tmp_path / "whole.h5"
    one = json.loads(run(*base, "--store", str(whole)))
    parts = [tmp_path / f"p{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        run(*base, "--shard", f"{i}/3", "--store", str(part))
    merged = tmp_path / "m.h5"
    run("merge", *map(str, parts), "-o", str(merged))
    single, joined = read_store(whole)[1][0].state(), read_store(merged)[1][0].state()
    for a, b in zip(single.layers, joined.layers, strict=True):
        fa, fb = fit_probe(a.stats, a.extras["classes"]), fit_probe(b.stats, b.extras["classes"])
        np.testing.assert_allclose(fb.weight, fa.weight, rtol=0, atol=1e-9 * np.abs(fa.weight).max())
        np.testing.assert_allclose(fb.bias, fa.bias, rtol=0, atol=1e-9 * np.abs(fa.bias).max())
    # The parts' eval counts belong to their own fits: the merged store says so instead of adding them.
    stale = json.loads(run("report", str(merged), "-f", "json"))["layers"][0]["probe"]
    assert stale["accuracy"] is None and "own fits" in stale["note"]
    # The merged fit state, evaluated on the same data, gives one pass's accuracies.
    from satcli.data import DataOptions, open_data
    from satcli.models import load_model

    model = load_model(SENSIBLE, device="cpu")
    source = open_data("digits", DataOptions())
    again = evaluation_pass(model, source, AnalysisOptions(), joined, [ProbeAnalysis()])
    accuracies = [
        layer.extras["probe"]["accuracy"] for layer in score_state(again, AnalysisOptions().thresholds).layers
    ]
    assert accuracies == [layer["probe"]["accuracy"] for layer in one["layers"]]
    assert all(a is not None and a > 0.3 for a in accuracies)
