"""Splitting one analysis: torchrun ranks and --shard jobs + merge equal one process (METHOD.md sec. 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, SAMPLE_MODELS

from satcli.store.reader import read_store

MODEL = SAMPLE_MODELS / "sensible.pt2"
COMMON = ("--data", "digits", "--max-samples", "240", "--batch-size", "50", "--keep-moments")


def _covs(store: Path, key: str = "0000") -> dict[str, np.ndarray]:
    with h5py.File(store, "r") as f:
        layers = f["checkpoints"][key]["layers"]
        return {str(g.attrs["name"]): g["m2"][()] / (int(g.attrs["samples"]) - 1) for g in layers.values()}


def _rows(store: Path, key: str = "0000") -> tuple[dict[str, np.ndarray], np.ndarray]:
    with h5py.File(store, "r") as f:
        group = f["checkpoints"][key]
        rows = {str(g.attrs["name"]): g["activations"][()] for g in group["layers"].values()}
        return rows, group["labels"][()]


def _assert_same_covariances(store: Path, reference: Path) -> None:
    mine, theirs = _covs(store), _covs(reference)
    assert list(mine) == list(theirs)
    for name, cov in theirs.items():
        assert np.linalg.norm(mine[name] - cov) / np.linalg.norm(cov) < 1e-12, name


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The one-process store and JSON document; its covariance checked against numpy on its own activations."""
    store = tmp_path_factory.mktemp("one") / "one.h5"
    out = subprocess.run(
        [sys.executable, "-m", "satcli", "analyze", MODEL, *COMMON, "--activations", "--store", store, "-f", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    rows, _ = _rows(store)
    for name, cov in _covs(store).items():
        reference = np.cov(rows[name].astype(np.float64), rowvar=False)
        assert np.linalg.norm(cov - reference) / np.linalg.norm(reference) < 1e-12
    return store, json.loads(out.stdout)


def _approx(value: object) -> object:
    """pytest.approx to 1e-9 relative through nested dicts (lists and strings compare exactly)."""
    if isinstance(value, dict):
        return {key: _approx(item) for key, item in value.items()}
    return pytest.approx(value, rel=1e-9, abs=1e-12) if isinstance(value, float) else value


def _ks(document: dict) -> list[int]:
    return [layer["k"] for layer in document["layers"]]


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_torchrun_equals_one_process(ranks: int, one_process: tuple[Path, dict], tmp_path: Path) -> None:
    reference, document = one_process
    store = tmp_path / "dist.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    out = subprocess.run(
        [*command, "-m", "satcli", "analyze", MODEL, *COMMON, "--store", store, "-f", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1  # only rank 0 prints
    result = json.loads(lines[0])
    assert result["distributed"] == {"world_size": ranks, "samples_per_rank": [240 // ranks] * ranks}
    assert _ks(result) == _ks(document)
    assert result["average_saturation"] == pytest.approx(document["average_saturation"], abs=1e-12)
    _assert_same_covariances(store, reference)
    # every default analysis gathers exactly too: class spectra, spectrum summaries, activation health
    for mine, theirs in zip(result["layers"], document["layers"], strict=True):
        for key in ("classes", "health", "effective_rank", "participation_ratio", "spectral_decay"):
            assert (key in mine) == (key in theirs), key
            if key in mine:
                assert mine[key] == _approx(theirs[key]), (mine["name"], key)


def test_shards_and_merge_equal_one_process(one_process: tuple[Path, dict], run_cli: Callable, tmp_path: Path) -> None:
    reference, document = one_process
    parts = [tmp_path / f"part{i}.h5" for i in range(3)]
    for i, part in enumerate(parts):
        assert (
            run_cli("analyze", MODEL, *COMMON, "--shard", f"{i}/3", "--activations", "--store", part, "-f", "json").code
            == 0
        )
    merged = tmp_path / "merged.h5"
    out = run_cli("merge", parts[2], parts[0], parts[1], "-o", merged)  # any order: merged in shard order
    assert out.code == 0, out.stderr
    _assert_same_covariances(merged, reference)
    rows, labels = _rows(merged)
    ref_rows, ref_labels = _rows(reference)
    assert np.array_equal(labels, ref_labels)
    assert all(np.array_equal(rows[name], ref_rows[name]) for name in ref_rows)
    report = run_cli("report", merged, "-f", "json")
    assert report.code == 0, report.stderr
    result = json.loads(report.stdout)
    assert _ks(result) == _ks(document)
    assert result["distributed"] == {"world_size": 3, "samples_per_rank": [80, 80, 80], "via": "shards"}
    # Per-class state: the same counts and class means (shift + sums / counts) as one process.
    _, (merged_checkpoint,) = read_store(merged)
    _, (one_checkpoint,) = read_store(reference)
    for mine, theirs in zip(merged_checkpoint.layers, one_checkpoint.layers, strict=True):
        a, b = mine.extras["classes"], theirs.extras["classes"]
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.counts, b.counts)
        mean_a = a.shift + a.sums / a.counts[:, None]
        mean_b = b.shift + b.sums / b.counts[:, None]
        assert np.linalg.norm(mean_a - mean_b) / np.linalg.norm(mean_b) < 1e-12
    for mine, theirs in zip(result["layers"], document["layers"], strict=True):
        assert mine["classes"]["between_share"] == pytest.approx(theirs["classes"]["between_share"], rel=1e-9)
        # Activation health (exact per-unit maxima and counts) and the spectrum summaries merge like one process.
        assert mine["health"] == theirs["health"]
        for key in ("effective_rank", "participation_ratio", "spectral_decay"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-9), key
    for command in (("compare", merged, reference), ("check", merged)):
        assert run_cli(*command).code in (0, 1)


def _analyze(*args: str | Path) -> None:
    """Run `satcli analyze` in this process for a fixture (its output is not looked at)."""
    from satcli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in ("analyze", *args, "-q", "-f", "json")])
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Partial stores (statistics only) by shard and model, each made once per module."""
    folder = tmp_path_factory.mktemp("shards")
    made: dict[tuple[str, Path], Path] = {}

    def make(shard: str, model: Path = MODEL) -> Path:
        if (shard, model) not in made:
            path = folder / f"{model.stem}-{shard.replace('/', 'of')}.h5"
            _analyze(model, *COMMON, "--shard", shard, "--store", path, "--no-activations")
            made[shard, model] = path
        return made[shard, model]

    return make


@pytest.mark.parametrize("command", ["report", "compare", "check", "plot"])
def test_a_partial_store_is_refused(command: str, shards: Callable, run_cli: Callable, tmp_path: Path) -> None:
    part = shards("0/2")
    args = ["-o", tmp_path / "p.png"] if command == "plot" else []
    result = run_cli(command, part, *args)
    assert result.code == 2
    assert "is a partial store (shard 0/2); merge the complete shard set first" in result.stderr
    assert "Traceback" not in result.stderr


def test_gaps_overlaps_and_mismatches_are_refused(
    shards: Callable, one_process: tuple[Path, dict], run_cli: Callable, tmp_path: Path
) -> None:
    out = tmp_path / "out.h5"
    a, c = shards("0/3"), shards("2/3")
    gap = run_cli("merge", a, c, "-o", out)
    assert gap.code == 2 and "gap: shard(s) 1/3 missing" in gap.stderr
    twice = run_cli("merge", a, a, shards("1/3"), c, "-o", out)
    assert twice.code == 2 and "shard 0/3 is given twice" in twice.stderr
    mixed = run_cli("merge", shards("0/2"), shards("1/3"), c, "-o", out)
    assert mixed.code == 2 and "overlap or leave gaps" in mixed.stderr
    other = run_cli("merge", shards("0/2"), shards("1/2", SAMPLE_MODELS / "narrow.pt2"), "-o", out)
    assert other.code == 2 and "another model (sha256)" in other.stderr
    assert not out.exists()
    both = run_cli("merge", a, one_process[0], "-o", out)
    assert both.code == 2 and "partial (shard) stores with full stores" in both.stderr
    bad = run_cli("analyze", MODEL, *COMMON, "--shard", "3/3", "--no-store")
    assert bad.code == 2 and "0 <= I < K" in bad.stderr
    into_input = run_cli("merge", a, c, "-o", a)
    assert into_input.code == 2 and "it is also an input" in into_input.stderr


def test_merge_concatenates_full_stores_into_a_trajectory(run_cli: Callable, tmp_path: Path) -> None:
    stores = []
    for name in ("narrow", "sensible"):
        store = tmp_path / f"{name}.h5"
        assert (
            run_cli("analyze", SAMPLE_MODELS / f"{name}.pt2", *COMMON, "--activations", "--store", store, "-q").code
            == 0
        )
        stores.append(store)
    out = tmp_path / "trajectory.h5"
    assert run_cli("merge", *stores, "-o", out).code == 0
    merged = run_cli("report", out, "-f", "jsonl")
    single = [json.loads(run_cli("report", s, "-f", "json").stdout) for s in stores]
    documents = [json.loads(line) for line in merged.stdout.splitlines()]
    assert [_ks(d) for d in documents] == [_ks(d) for d in single]
    for store, key in ((stores[0], "0000"), (stores[1], "0001")):
        rows, _ = _rows(store)
        merged_rows, _ = _rows(out, key)
        assert all(np.array_equal(merged_rows[name], rows[name]) for name in rows)
    assert "trajectory of" in run_cli("report", out).stdout


def test_shard_under_torchrun_is_refused(run_cli: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29999")):
        monkeypatch.setenv(name, value)
    result = run_cli("analyze", MODEL, *COMMON, "--shard", "0/2", "--no-store")
    assert result.code == 2 and "cannot also run under torchrun" in result.stderr


def test_torchrun_similarity_gathers_the_ranks_sums(tmp_path: Path) -> None:
    """Two ranks' CKA sums gathered and merged on rank 0 give the one-process matrix (1e-12)."""
    args = ["similarity", MODEL, "--data", "digits", "--max-samples", "120", "-q", "-f", "json"]
    one = subprocess.run([sys.executable, "-m", "satcli", *args], capture_output=True, text=True, cwd=REPO, check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    sums = tmp_path / "sums.h5"
    run = [*command, "-m", "satcli", *args, "-o", sums]
    out = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    document, reference = json.loads(out.stdout), json.loads(one.stdout)  # one document: only rank 0 prints
    assert document["inputs"] == 120
    np.testing.assert_allclose(document["matrix"], reference["matrix"], rtol=1e-12, atol=1e-14)
    with h5py.File(sums, "r") as f:  # rank 0 wrote the merged, complete sums
        assert not f.attrs["partial"] and f["sides/0/0"].attrs["n"] == 120


def test_torchrun_layer_split_equals_one_process(one_process: tuple[Path, dict], tmp_path: Path) -> None:
    """Each rank tracks its share of the layers over all the data; the gathered layers equal one process."""
    reference, document = one_process
    store = tmp_path / "layers.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    out = subprocess.run(
        [*command, "-m", "satcli", "analyze", MODEL, *COMMON, "--split-by", "layers", "--store", store, "-f", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()  # only rank 0 prints
    result = json.loads(line)
    assert result["distributed"] == {"world_size": 2, "split": "layers"}
    assert _ks(result) == _ks(document)
    assert result["average_saturation"] == pytest.approx(document["average_saturation"], abs=1e-12)
    _assert_same_covariances(store, reference)
