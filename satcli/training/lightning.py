"""Lightning integration (optional extra `satcli[lightning]`): saturation per epoch as a trajectory store.

    trainer = lightning.Trainer(callbacks=[SaturationCallback(store="run.h5")])

The callback attaches a passive Monitor for the chosen stage's batches and, at the end of every
`every_n_epochs`-th epoch, writes one checkpoint (step = epoch) and logs its saturation, k and average to
the trainer's logger (satcli.training.logging's keys). Under DDP the ranks' states are merged exactly first
and only rank 0 writes and logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from satcli.errors import SatcliError

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on the environment
    raise SatcliError("the Lightning callback needs the lightning extra: pip install 'satcli[lightning]'") from None

from satcli.training.logging import scalar_metrics
from satcli.training.monitor import Monitor
from satcli.training.result import Result

STAGES = ("train", "validation")


class SaturationCallback(pl.Callback):
    """Records saturation during the `stage` batches and checkpoints the trajectory store at epoch ends."""

    def __init__(
        self,
        store: str | Path,
        every_n_epochs: int = 1,
        layers: Sequence[str] | None = None,
        stage: str = "train",
        delta: float = 0.99,
        conv_method: str = "mean",
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise SatcliError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        if every_n_epochs < 1:
            raise SatcliError(f"every_n_epochs must be a positive integer, got {every_n_epochs}")
        self.store = Path(store)
        self.every_n_epochs = every_n_epochs
        self.layers = tuple(layers or ())
        self.stage = stage
        self.delta = delta
        self.conv_method = conv_method
        self.monitor: Monitor | None = None
        self.results: list[Result] = []
        self._paused = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.monitor = Monitor(
            pl_module, store=self.store, layers=self.layers, delta=self.delta, conv_method=self.conv_method
        )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.monitor is not None:
            self.monitor.detach()

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def _start(self, trainer: pl.Trainer) -> None:
        if self.monitor is not None and self._due(trainer):
            self.monitor.reset()
            self.monitor.attach()

    def _end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        monitor = self.monitor
        if monitor is None or not monitor.attached:
            return
        monitor.detach()
        result = monitor.checkpoint(step=trainer.current_epoch, stage=self.stage)
        if result is not None:
            self.results.append(result)
            if trainer.is_global_zero:
                # Epoch-end hooks may log (on_epoch only); only rank 0 has the result, hence rank_zero_only.
                pl_module.log_dict(scalar_metrics(result.checkpoint), on_step=False, on_epoch=True, rank_zero_only=True)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "train":
            self._start(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "train":
            self._end(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "validation":
            self._start(trainer)
        elif self.monitor is not None and self.monitor.attached:
            # Validation inside a training epoch: its batches are not the training stage's.
            self.monitor.detach()
            self._paused = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stage == "validation":
            self._end(trainer, pl_module)
        elif self._paused and self.monitor is not None:
            self.monitor.attach()
            self._paused = False
