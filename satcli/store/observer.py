"""The store as an observer of the batch loop: activations streamed per batch, the final state on finish."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta
from satcli.store.checkpoint import CheckpointWriter
from satcli.store.writer import StoreWriter


class StoreObserver:
    """Writes one checkpoint group of an open StoreWriter while the engine runs."""

    def __init__(
        self, writer: StoreWriter, *, store_activations: bool, activations_dtype: str, keep_moments: bool = True
    ) -> None:
        self.wants_rows = store_activations
        self._writer = writer
        self._dtype = activations_dtype
        self._keep_moments = keep_moments
        self._checkpoint: CheckpointWriter | None = None

    @classmethod
    def of(cls, writer: StoreWriter, options: object) -> StoreObserver:
        """An observer storing what the run's options ask for (store_activations, activations_dtype,
        keep_moments); a partial (shard) store keeps the moments whatever the options, for its merge."""
        return cls(
            writer,
            store_activations=bool(getattr(options, "store_activations", False)),
            activations_dtype=str(getattr(options, "activations_dtype", "float32")),
            keep_moments=bool(getattr(options, "keep_moments", False)) or writer.partial,
        )

    def started(self, meta: CheckpointMeta, layers: Sequence[LayerMeta]) -> None:
        self._checkpoint = self._writer.begin_checkpoint(
            meta,
            layers,
            store_activations=self.wants_rows,
            activations_dtype=self._dtype,
            keep_moments=self._keep_moments,
        )

    def batch(self, rows: dict[str, torch.Tensor], labels: torch.Tensor | None, count: int) -> None:
        if self._checkpoint is None or not self.wants_rows:
            return
        dtype = getattr(torch, self._dtype)
        arrays = {name: t.to(device="cpu", dtype=dtype).numpy() for name, t in rows.items()}
        self._checkpoint.append(arrays, None if labels is None else labels.cpu().numpy())

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None:
        if self._checkpoint is None:
            return
        self._checkpoint.finish(
            {layer.meta.name: layer.stats for layer in state.layers},
            result.layers,
            num_inputs=state.num_inputs,
            extras={layer.meta.name: layer.extras for layer in state.layers},
            options=state.meta.options,
        )
