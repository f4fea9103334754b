"""How `satcli analyze` splits its data: one process, a `--shard I/K` job, or a rank under torchrun."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointState
from satcli.data import DataSource
from satcli.engine.distributed import launched_ranks, parse_shard, process_group, score_gathered, shard_source
from satcli.engine.options import AnalysisOptions
from satcli.engine.sweep import STORE_ATTRS, ScoreOne, score_checkpoint
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.store.merge import write_state
from satcli.store.writer import StoreWriter


@dataclass(frozen=True)
class DataPart:
    """This process' data, how it scores a checkpoint, and whether it is the one that prints (rank 0)."""

    source: DataSource
    score: ScoreOne
    rank: int = 0


@contextlib.contextmanager
def split_run(shard: str | None, source: DataSource, device: torch.device) -> Iterator[DataPart]:
    """The split for this process; under torchrun, inside the launcher's process group."""
    ranks = launched_ranks()
    if shard is not None and ranks is not None and ranks[1] > 1:
        raise SatcliError("a shard job cannot also run under torchrun; use one way of splitting the data")
    if shard is not None:
        index, count = parse_shard(shard)
        part, plan = shard_source(source, index, count)
        yield DataPart(part, partial(score_checkpoint, attrs={**STORE_ATTRS, **plan.to_attrs()}))
        return
    if ranks is None:
        yield DataPart(source, score_checkpoint)
        return
    rank, world = ranks
    with process_group(device):
        part, _ = shard_source(source, rank, world)
        yield DataPart(part, _score_rank, rank)


def _score_rank(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    target: Path | None,
    *,
    append: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> CheckpointResult:
    """One checkpoint under torchrun: this rank's shard, gathered and merged; rank 0 writes the store."""

    def write(state: CheckpointState, result: CheckpointResult) -> CheckpointResult:
        with StoreWriter(target, STORE_ATTRS, append=append) as writer:  # type: ignore[arg-type]
            write_state(writer, state, result, options.activations_dtype)
        return replace(result, store=str(target))

    return score_gathered(loaded, source, options, None if target is None else write, on_batch)
