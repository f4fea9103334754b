"""Schema 3: a store keeps the eigenvalues re-scoring needs and m2 only where a merge needs it."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from conftest import SAMPLE_MODELS

from satcli.store.encoding import SCHEMA_VERSION

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
FAST = ("--data", "digits", "--max-samples", "200", "--batch-size", "50", "-q", "-f", "json")


def _layer_datasets(store: Path) -> list[set[str]]:
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        return [set(layers[key].keys()) for key in sorted(layers, key=int)]


def test_a_store_without_moments_re_scores_to_the_analyze_json(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    analyzed = run_cli("analyze", SENSIBLE, "--no-classes", "--store", store, *FAST)
    assert analyzed.code == 0, analyzed.stderr
    with h5py.File(store, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION == 3
    for names in _layer_datasets(store):
        assert names == {"mean", "eigenvalues", "health"}  # no cov, no m2, no activations (health: 3 d numbers)
    reported = run_cli("report", store, "-f", "json")
    assert reported.code == 0, reported.stderr
    assert json.loads(reported.stdout) == json.loads(analyzed.stdout)


def test_class_state_without_m2_re_scores_identically_from_its_stored_entries(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    analyzed = run_cli("analyze", SENSIBLE, "--store", store, *FAST)
    assert analyzed.code == 0, analyzed.stderr
    for names in _layer_datasets(store):
        assert names == {"mean", "eigenvalues", "classes", "health"}  # the class sums, but no d x d m2
    with h5py.File(store, "r") as f:
        for group in f["checkpoints/0000/layers"].values():
            assert set(json.loads(group.attrs["entries"])) == {"classes", "health"}
    reported = run_cli("report", store, "-f", "json")
    assert json.loads(reported.stdout) == json.loads(analyzed.stdout)


def test_keep_moments_keeps_a_checksummed_m2_with_the_covariance_of_the_activations(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    args = ("--no-classes", "--keep-moments", "--activations", "--store", store)
    assert run_cli("analyze", SENSIBLE, *args, *FAST).code == 0
    with h5py.File(store, "r") as f:
        layers = f["checkpoints/0000/layers"]
        for key in layers:
            group = layers[key]
            m2 = group["m2"]
            assert m2.fletcher32 and m2.dtype == np.float64
            rows = group["activations"][()].astype(np.float64)
            reference = np.cov(rows, rowvar=False)
            cov = m2[()] / (int(group.attrs["samples"]) - 1)
            assert np.linalg.norm(cov - reference) / np.linalg.norm(reference) < 1e-10


def test_shards_keep_moments_and_merge_refuses_a_part_without_them(run_cli, tmp_path: Path) -> None:
    parts = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, part in enumerate(parts):
        assert run_cli("analyze", SENSIBLE, "--no-classes", "--shard", f"{i}/2", "--store", part, *FAST).code == 0
        assert all("m2" in names for names in _layer_datasets(part))  # no --keep-moments needed
    assert run_cli("merge", *parts, "-o", tmp_path / "ok.h5").code == 0
    with h5py.File(parts[1], "r+") as f:
        for group in f["checkpoints/0000/layers"].values():
            del group["m2"]
    refused = run_cli("merge", *parts, "-o", tmp_path / "bad.h5")
    assert refused.code == 2
    message = refused.stderr.strip()
    assert "\n" not in message and "--keep-moments" in message and "keeps no moments" in message
    assert not (tmp_path / "bad.h5").exists()


def test_full_stores_without_m2_concatenate_and_re_score_unchanged(run_cli, tmp_path: Path) -> None:
    stores = [tmp_path / f"s{i}.h5" for i in range(2)]
    documents = []
    for i, store in enumerate(stores):
        out = run_cli("analyze", SENSIBLE, "--store", store, *FAST[:3], str(100 + 50 * i), *FAST[4:])
        assert out.code == 0, out.stderr
        documents.append(json.loads(out.stdout))
    merged = tmp_path / "trajectory.h5"
    assert run_cli("merge", *stores, "-o", merged).code == 0
    for key, document in zip(("0000", "0001"), documents, strict=True):
        reported = json.loads(run_cli("report", f"{merged}:{key}", "-f", "json").stdout)
        assert reported["layers"] == document["layers"]  # class entries included
        assert reported["verdict"] == document["verdict"]
    assert all(names == {"mean", "eigenvalues", "classes", "health"} for names in _layer_datasets(merged))
