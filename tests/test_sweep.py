"""Many checkpoints in one call: natural order, data decoded once, per-checkpoint stores, streamed output."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE_MODELS

import satcli.models
from satcli.core.results import CheckpointResult
from satcli.data import DataOptions, open_data
from satcli.engine import sweep
from satcli.engine.options import AnalysisOptions
from satcli.engine.sweep import Failure, natural_key, order_checkpoints, score_checkpoints
from satcli.models import load_model
from satcli.store.reader import read_store

NARROW = SAMPLE_MODELS / "narrow.pt2"
SENSIBLE = SAMPLE_MODELS / "sensible.pt2"
FAST = ("--max-samples", "200", "-q")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _misfit_model(path: Path) -> Path:
    """A TorchScript model that loads fine but cannot run on 8x8 digits (it wants 32 features)."""
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 4))
    torch.jit.save(torch.jit.trace(module, torch.zeros(2, 32)), str(path))
    return path


def _copies(folder: Path, **names: Path) -> dict[str, Path]:
    out = {}
    for name, source in names.items():
        out[name] = folder / f"{name}.pt2"
        shutil.copy(source, out[name])
    return out


# --------------------------------------------------------------------------------------------- ordering


def test_natural_order_puts_epoch_2_before_epoch_10() -> None:
    given = [Path(p) for p in ("run/epoch_10.pt", "run/epoch_2.pt", "run/Epoch_3.pt", "run/epoch_1.pt", "best.pt")]
    assert [str(p) for p in order_checkpoints(given)] == [
        "best.pt",
        "run/epoch_1.pt",
        "run/epoch_2.pt",
        "run/Epoch_3.pt",
        "run/epoch_10.pt",
    ]
    assert order_checkpoints(given, sort=False) == given


def test_natural_key_compares_numbers_as_numbers_and_breaks_ties() -> None:
    assert natural_key("step9") < natural_key("step10") < natural_key("step100")
    assert natural_key("a2b10") < natural_key("a2b9c") or natural_key("a2b10") > natural_key("a2b9c")
    assert natural_key("v1.10") > natural_key("v1.9")
    # "02" and "2" are the same number; the plain text decides, so the order is total and stable.
    assert [str(p) for p in order_checkpoints([Path("e2"), Path("e02")])] == ["e02", "e2"]


# ------------------------------------------------------------------------------------ score_checkpoints


class _CountingDataset(torch.utils.data.Dataset):
    """Counts how many samples are decoded."""

    def __init__(self, inner: torch.utils.data.Dataset) -> None:
        self.inner = inner
        self.decoded = 0

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> object:
        self.decoded += 1
        return self.inner[index]


@pytest.mark.parametrize("limit", [sweep.MATERIALIZE_MAX_BYTES, 0])
def test_data_are_decoded_once_for_many_checkpoints(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    monkeypatch.setattr(sweep, "MATERIALIZE_MAX_BYTES", limit)
    source = open_data("digits", DataOptions(max_samples=100, batch_size=32))
    counting = _CountingDataset(source.dataset)
    source.dataset = counting
    model = load_model(NARROW)
    outcomes = list(score_checkpoints([NARROW] * 3, source, AnalysisOptions(), lambda p: model, lambda p: None))
    assert all(isinstance(o, CheckpointResult) for o in outcomes)
    # Under the limit the data are decoded once; above it (limit 0) once per checkpoint.
    assert counting.decoded == (100 if limit else 300)
    first = outcomes[0]
    assert isinstance(first, CheckpointResult)
    assert all(o.layers == first.layers for o in outcomes if isinstance(o, CheckpointResult))


def test_one_checkpoint_streams_without_decoding_into_memory() -> None:
    source = open_data("digits", DataOptions(max_samples=50))
    model = load_model(NARROW)
    [outcome] = score_checkpoints([NARROW], source, AnalysisOptions(), lambda p: model, lambda p: None)
    assert isinstance(outcome, CheckpointResult)
    assert source._cache is None


def test_a_failure_is_yielded_and_the_next_checkpoint_still_scored(tmp_path: Path) -> None:
    source = open_data("digits", DataOptions(max_samples=50))
    missing = tmp_path / "missing.pt"
    outcomes = list(
        score_checkpoints([missing, NARROW], source, AnalysisOptions(), load_model, lambda p: tmp_path / "s.h5")
    )
    assert isinstance(outcomes[0], Failure) and outcomes[0].path == missing
    assert "not found" in outcomes[0].reason
    assert isinstance(outcomes[1], CheckpointResult) and outcomes[1].store == str(tmp_path / "s.h5")
    _, stored = read_store(tmp_path / "s.h5")
    assert [c.meta.model_path for c in stored] == [str(NARROW)]


# ------------------------------------------------------------------------------------------------ CLI


def test_failure_on_the_third_checkpoint_keeps_two_lines_and_two_groups(run_cli, tmp_path: Path) -> None:
    models = _copies(tmp_path, ckpt_1=NARROW, ckpt_2=SENSIBLE)
    # ckpt_10 sorts last in natural order (lexically it would come second) and fails while it runs.
    bad = _misfit_model(tmp_path / "ckpt_10.pt")
    store = tmp_path / "all.h5"
    result = run_cli("analyze", bad, models["ckpt_2"], models["ckpt_1"], "--store", store, "-f", "jsonl", *FAST)
    assert result.code == 2
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and result.stdout.endswith("\n")
    records = [json.loads(line) for line in lines]
    assert [r["model"] for r in records] == [str(models["ckpt_1"]), str(models["ckpt_2"])]
    assert [r["verdict"] for r in records] == ["underparameterized", "balanced"]
    assert all(r["store"] == str(store) for r in records)
    assert set(records[0]) >= {"layers", "average_saturation", "tail", "verdict", "options", "thresholds"}
    assert set(records[0]["layers"][0]) >= {"name", "k", "saturation", "flags"}
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[0].startswith(f"error: {bad}: model and data do not fit")
    assert errors[-1] == "1 of 3 checkpoints failed"
    _, stored = read_store(store)
    assert [(c.key, c.meta.model_path, c.meta.model_sha256) for c in stored] == [
        ("0000", str(models["ckpt_1"]), _sha256(models["ckpt_1"])),
        ("0001", str(models["ckpt_2"]), _sha256(models["ckpt_2"])),
    ]
    assert [c.layers[0].k for c in stored] == [r["layers"][0]["k"] for r in records]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.h5", "ckpt_1.pt2", "ckpt_10.pt", "ckpt_2.pt2"]


def test_a_killed_run_keeps_finished_rows_and_store_groups(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted while loading the third checkpoint: the first two are already printed and stored."""
    models = _copies(tmp_path, a1=NARROW, a2=NARROW, a3=NARROW)

    def load(path: Path, **kwargs: object) -> object:
        if path == models["a3"]:
            raise KeyboardInterrupt
        return load_model(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(satcli.models, "load_model", load)  # analyze imports it when run
    store = tmp_path / "s.h5"
    result = run_cli("analyze", *models.values(), "--store", store, "-f", "csv", *FAST)
    assert result.code == 130
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.count("model,sha256,") == 1
    assert [(r["model"], r["layer"]) for r in rows] == [
        (str(models[name]), layer) for name in ("a1", "a2") for layer in ("net.1", "net.3", "net.5")
    ]
    _, stored = read_store(store)
    assert [c.meta.model_path for c in stored] == [str(models["a1"]), str(models["a2"])]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_several_checkpoints_print_tables_then_trajectory_and_default_stores(run_cli, tmp_path: Path) -> None:
    models = _copies(tmp_path, epoch_2=NARROW, epoch_10=SENSIBLE)
    junk = tmp_path / "epoch_3.pt2"
    junk.write_bytes(b"not a model")
    result = run_cli("analyze", *models.values(), junk, *FAST)
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: {junk}: cannot read {junk} as a PyTorch model: unrecognised file content"
    )
    out = result.stdout
    assert out.count("╭─ verdict") == 2
    assert out.index("epoch_2.pt2 (export)") < out.index("epoch_10.pt2 (export)")
    trajectory = out[out.index("saturation by layer and checkpoint") :]
    header = next(line for line in trajectory.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "epoch_2", "epoch_10"]
    assert "verdict" in trajectory and "under" in trajectory and "balanced" in trajectory
    for model in models.values():
        _, [stored] = read_store(model.with_name(model.name + ".satcli.h5"))
        assert stored.meta.model_path == str(model)


def test_trajectory_flag_prints_only_the_trajectory(run_cli, tmp_path: Path) -> None:
    result = run_cli("analyze", NARROW, "--no-store", "--trajectory", *FAST)
    assert result.code == 0, result.stderr
    assert "verdict" in result.stdout and "╭─ verdict" not in result.stdout
    assert result.stdout.startswith("saturation by layer and checkpoint · 1 checkpoint · data digits")
    line = _one_line(run_cli("analyze", NARROW, "--no-store", "--trajectory", "-f", "jsonl"))
    assert "--trajectory" in line


def test_no_sort_keeps_the_given_order(run_cli, tmp_path: Path) -> None:
    models = _copies(tmp_path, e10=NARROW, e2=NARROW)
    result = run_cli("analyze", models["e10"], models["e2"], "--no-store", "--no-sort", "-f", "jsonl", *FAST)
    assert result.code == 0, result.stderr
    assert [json.loads(line)["model"] for line in result.stdout.splitlines()] == [str(models["e10"]), str(models["e2"])]


def _one_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and result.stdout == ""
    return lines[0]


def test_an_unreadable_image_mid_run_is_named_as_the_datas_not_the_models(run_cli, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / label / f"{index}.png")
    broken = str(tmp_path / "imgs" / "b" / "2.png")
    Path(broken).write_bytes(Path(broken).read_bytes()[:60])  # the header reads, the pixels do not
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    ).eval()
    ep = torch.export.export(net, (torch.zeros(2, 3, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    model = tmp_path / "rgb.pt2"
    torch.export.save(ep, model)
    result = run_cli("analyze", model, "--data", f"folder:{tmp_path / 'imgs'}", "--no-store", "--batch-size", "2")
    assert result.code == 2
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: cannot read image {broken}") and str(model) not in line
