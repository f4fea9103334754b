"""Saturation in the training run's own logs: Lightning's CSVLogger and a TensorBoard event file."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import satcli
from satcli.data import DataOptions, open_data


def _report(run_cli: Callable, store: Path) -> list[dict]:
    report = run_cli("report", store, "-f", "jsonl")
    assert report.code == 0, report.stderr
    return [json.loads(line) for line in report.stdout.splitlines()]


def _expected(document: dict) -> dict[str, float]:
    """The logger keys and the store report's numbers for one checkpoint."""
    values = {"satcli/average_saturation": document["average_saturation"]}
    for layer in document["layers"]:
        values[f"satcli/saturation/{layer['name']}"] = layer["saturation"]
        values[f"satcli/k/{layer['name']}"] = layer["k"]
    return values


def test_lightning_logs_to_the_csv_logger(tmp_path: Path, run_cli: Callable):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger
    from test_lightning import Classifier, _loader

    from satcli.training.lightning import SaturationCallback

    torch.manual_seed(0)
    store = tmp_path / "run.h5"
    logger = CSVLogger(tmp_path / "logs", name="run", version=0)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[SaturationCallback(store=store)],
        accelerator="cpu",
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(Classifier(), _loader("train", 300))
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("satcli/average_saturation")]
    documents = _report(run_cli, store)
    assert [int(row["epoch"]) for row in rows] == [d["options"]["step"] for d in documents] == [0, 1, 2]
    # Epoch-end values are logged at the trainer's global step: 6 batches of 50 per epoch.
    assert [int(row["step"]) for row in rows] == [5, 11, 17]
    for row, document in zip(rows, documents, strict=True):
        expected = _expected(document)
        assert {key for key in row if key.startswith("satcli/")} == set(expected)
        for key, value in expected.items():
            assert math.isclose(float(row[key]), value, rel_tol=1e-6), key  # the logger keeps float32


def test_monitor_writes_a_tensorboard_event_file(tmp_path: Path, run_cli: Callable):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    source = open_data("digits", DataOptions(split="train", batch_size=100, max_samples=300))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    store = tmp_path / "run.h5"
    writer = SummaryWriter(str(tmp_path / "tb"))
    with satcli.Monitor(model, store=store, writer=writer) as monitor:
        for step in (10, 20):
            for x, y in source.batches():
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            monitor.checkpoint(step=step)
    writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    documents = _report(run_cli, store)
    expected = [_expected(d) for d in documents]
    assert set(events.Tags()["scalars"]) == set(expected[0])
    for key in expected[0]:
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [10, 20]
        for scalar, values in zip(scalars, expected, strict=True):
            assert math.isclose(scalar.value, values[key], rel_tol=1e-6), key


def test_between_share_is_logged_with_labels():
    from satcli.training.logging import scalar_metrics

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    source = open_data("digits", DataOptions(split="test", batch_size=100, max_samples=200))
    result = satcli.analyze_model(model, list(source.batches()), classes=True)
    metrics = scalar_metrics(result.checkpoint)
    for layer in result.to_dict()["layers"]:
        assert metrics[f"satcli/between_share/{layer['name']}"] == layer["classes"]["between_share"]
