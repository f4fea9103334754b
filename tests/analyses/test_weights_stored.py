"""Weight spectra as a stored analysis: `analyze --weight-spectra` keeps each layer's ESD in the store, and
`report` re-scores it to the numbers the run printed, checked against numpy on the checkpoint's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SAMPLE_MODELS

from satcli.models import load_model
from satcli.store.reader import read_store

MODEL = SAMPLE_MODELS / "sensible.pt2"


def test_weight_spectra_are_stored_and_reported(run_cli, tmp_path) -> None:
    store = tmp_path / "w.h5"
    run = run_cli("analyze", MODEL, "--max-samples", "64", "--store", store, "-q", "-f", "json", "--weight-spectra")
    assert run.code == 0, run.stderr
    live = json.loads(run.stdout)
    _, (checkpoint,) = read_store(store)
    params = dict(load_model(MODEL, device="cpu").module.named_parameters())
    for layer in checkpoint.layers:
        w = params[f"{layer.meta.name}.weight"].detach().double().numpy()
        # The ESD pools every kernel position's out x in slice (WeightWatcher 0.7's convention).
        slices = [w] if w.ndim == 2 else [w[:, :, i, j] for i in range(w.shape[2]) for j in range(w.shape[3])]
        esd = np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in slices]))
        element = layer.extras["weights"]
        np.testing.assert_allclose(element["evals"], esd, rtol=1e-10, atol=1e-12)  # type: ignore[index]
        assert list(element["shape"]) == list(w.shape)  # type: ignore[index]
    report = run_cli("report", store, "-f", "json")
    assert report.code == 0, report.stderr
    stored = json.loads(report.stdout)
    assert [layer["weights"] for layer in stored["layers"]] == [layer["weights"] for layer in live["layers"]]
    assert stored["options"]["analyses"][-1] == "weights"
    table = run_cli("report", store)
    assert "alpha" in table.stdout and "st.rank" in table.stdout
    for layer in stored["layers"]:
        frob = float(np.linalg.norm(params[f"{layer['name']}.weight"].detach().double().numpy()))
        assert layer["weights"]["frobenius_norm"] == pytest.approx(frob, rel=1e-10)


def test_analysis_weights_is_the_same_as_the_flag(run_cli) -> None:
    by_flag = run_cli("analyze", MODEL, "--max-samples", "64", "--no-store", "-q", "-f", "json", "--weight-spectra")
    by_name = run_cli(
        "analyze", MODEL, "--max-samples", "64", "--no-store", "-q", "-f", "json", "--analysis", "weights"
    )
    assert by_flag.code == by_name.code == 0
    strip = [{k: v for k, v in layer.items()} for layer in json.loads(by_flag.stdout)["layers"]]
    assert strip == json.loads(by_name.stdout)["layers"]
