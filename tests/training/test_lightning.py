"""The Lightning callback: two epochs of a real Trainer write a two-checkpoint trajectory store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from satcli.data import DataOptions, open_data  # noqa: E402
from satcli.training.lightning import SaturationCallback  # noqa: E402


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader(split: str, count: int) -> DataLoader:
    source = open_data("digits", DataOptions(split=split, max_samples=count, batch_size=count))
    x, y = next(iter(source.batches()))
    return DataLoader(TensorDataset(x, y), batch_size=50)


@pytest.mark.parametrize("stage", ["train", "validation"])
def test_callback_two_epochs(stage: str, tmp_path: Path, run_cli: Callable) -> None:
    torch.manual_seed(0)
    store = tmp_path / "run.h5"
    callback = SaturationCallback(store=store, stage=stage)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    trainer.fit(Classifier(), _loader("train", 300), _loader("test", 200))
    report = run_cli("report", store, "-f", "jsonl")
    assert report.code == 0, report.stderr
    documents = [json.loads(line) for line in report.stdout.splitlines()]
    assert [d["options"]["step"] for d in documents] == [0, 1]
    assert [d["options"]["metadata"]["stage"] for d in documents] == [stage, stage]
    # Each epoch counts exactly its stage's inputs: no sanity-check batch, no validation inside training.
    expected = 300 if stage == "train" else 200
    assert [d["options"]["num_inputs"] for d in documents] == [expected, expected]
    assert [layer["name"] for layer in documents[0]["layers"]] == ["net.1", "net.3"]
    assert all(np.isfinite(d["average_saturation"]) for d in documents)
    assert callback.monitor is not None and not callback.monitor.attached


def test_callback_rejects_a_bad_stage(tmp_path: Path) -> None:
    from satcli.errors import SatcliError

    with pytest.raises(SatcliError, match="stage"):
        SaturationCallback(store=tmp_path / "x.h5", stage="test")
