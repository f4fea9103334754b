"""Class spectra through analyze, the store and report, against numpy on the stored activations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SAMPLE_MODELS

from satcli.store.reader import read_activations, read_labels, read_store

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
FIXTURE_V1 = REPO / "tests" / "fixtures" / "store_v1.h5"


def numpy_spectra(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """between_share and rank_between from the definitions, in float64."""
    x = x.astype(np.float64)
    mu = x.mean(axis=0)
    total = np.trace((x - mu).T @ (x - mu)) / len(x)
    sigma_b = np.zeros((x.shape[1], x.shape[1]))
    for c in np.unique(y):
        offset = x[y == c].mean(axis=0) - mu
        sigma_b += (y == c).mean() * np.outer(offset, offset)
    eig = np.linalg.eigvalsh(sigma_b)
    return float(np.trace(sigma_b) / total), int(np.sum(eig > 1e-10 * eig.max()))


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from satcli.cli import main

    store = tmp_path_factory.mktemp("classes") / "s.h5"
    out = tmp_path_factory.mktemp("out") / "out.json"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as done:
        main(["analyze", str(SENSIBLE), "--store", str(store), "--activations", "-q", "-f", "json"])
    assert done.value.code == 0
    out.write_text(buffer.getvalue())
    return store, json.loads(buffer.getvalue())


def test_analyze_json_has_class_numbers_equal_to_numpy(analyzed: tuple[Path, dict]) -> None:
    store, record = analyzed
    _, [checkpoint] = read_store(store)
    labels = read_labels(store, checkpoint.key)
    assert labels is not None
    for layer in record["layers"]:
        rows = read_activations(store, checkpoint.key, layer["name"])
        share, rank = numpy_spectra(rows, labels)
        assert layer["classes"]["num_classes"] == 10
        assert layer["classes"]["between_share"] == pytest.approx(share, rel=1e-9)
        assert layer["classes"]["rank_between"] == rank
    # Deeper layers separate the classes more (seed 003's observation on a trained network).
    shares = [layer["classes"]["between_share"] for layer in record["layers"]]
    assert shares[-1] > shares[0]


def test_report_gives_the_same_class_numbers_without_the_model(run_cli, analyzed: tuple[Path, dict]) -> None:
    store, record = analyzed
    result = run_cli("report", store, "-f", "json")
    assert result.code == 0, result.stderr
    again = json.loads(result.stdout)
    assert [layer["classes"] for layer in again["layers"]] == [layer["classes"] for layer in record["layers"]]


def test_table_has_a_between_column_only_with_labels(run_cli, tmp_path: Path) -> None:
    labelled = run_cli("analyze", SENSIBLE, "--no-store", "-q")
    # The header row found by its content: the title line above it holds the model's path and wraps in a
    # checkout under a long folder.
    header = next(line for line in labelled.stdout.splitlines() if line.split()[:2] == ["#", "layer"])
    assert "between" in header
    off = run_cli("analyze", SENSIBLE, "--no-store", "-q", "--no-classes")
    assert "between" not in off.stdout
    data = tmp_path / "unlabelled.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype(np.float32))
    plain = run_cli("analyze", SENSIBLE, "--data", data, "--no-store", "-q", "-f", "json")
    assert plain.code == 0, plain.stderr
    assert all("classes" not in layer for layer in json.loads(plain.stdout)["layers"])


def test_string_labels_and_one_class(run_cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32)
    names = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, 60)]
    data = tmp_path / "named.npz"
    np.savez(data, x=x, y=names)
    result = run_cli("analyze", SENSIBLE, "--data", data, "--no-store", "-q", "-f", "json")
    assert result.code == 0, result.stderr
    assert {layer["classes"]["num_classes"] for layer in json.loads(result.stdout)["layers"]} == {3}
    single = tmp_path / "single.npz"
    np.savez(single, x=x, y=np.zeros(60, dtype=np.int64))
    result = run_cli("analyze", SENSIBLE, "--data", single, "--no-store", "-q", "-f", "json")
    assert result.code == 0, result.stderr
    classes = json.loads(result.stdout)["layers"][0]["classes"]
    assert classes["between_share"] is None and "needs at least 2" in classes["notes"][0]
    table = run_cli("analyze", SENSIBLE, "--data", single, "--no-store", "-q")
    assert table.code == 0 and "Traceback" not in table.stderr


def test_v1_stores_still_read_with_no_class_numbers(run_cli) -> None:
    result = run_cli("report", FIXTURE_V1, "-f", "jsonl")
    assert result.code == 0, result.stderr
    for line in result.stdout.splitlines():
        assert all("classes" not in layer for layer in json.loads(line)["layers"])


def test_weight_spectra_sit_next_to_saturation(run_cli) -> None:
    """--weight-spectra: each layer's stable rank equals numpy's on the checkpoint's own weights."""
    from satcli.models import load_model

    result = run_cli("analyze", SAMPLE_MODELS / "deep_wide.pt2", "--no-store", "-q", "-f", "json", "--weight-spectra")
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    params = dict(load_model(SAMPLE_MODELS / "deep_wide.pt2", device="cpu").module.named_parameters())
    for layer in record["layers"]:
        w = params[f"{layer['name']}.weight"].detach().double().numpy()
        singular = np.linalg.svd(w, compute_uv=False)
        assert layer["weights"]["stable_rank"] == pytest.approx((singular**2).sum() / singular[0] ** 2, rel=1e-9)
        assert layer["k"] is not None  # the saturation numbers are still there
    fitted = [layer for layer in record["layers"] if layer["weights"]["alpha"] is not None]
    assert len(fitted) == 8 and all(1.0 < layer["weights"]["alpha"] < 10.0 for layer in fitted)
