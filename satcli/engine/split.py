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
from satcli.engine.layersplit import layer_shard_attrs, layer_share, score_layer_rank
from satcli.engine.options import AnalysisOptions
from satcli.engine.passes import budgeted
from satcli.engine.plan import Plan, default_budget
from satcli.engine.sweep import STORE_ATTRS, ScoreOne, score_checkpoint
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.store.merge import write_state
from satcli.store.writer import StoreWriter

SPLITS = ("data", "layers")


@dataclass(frozen=True)
class DataPart:
    """This process' data, how it scores a checkpoint, and whether it is the one that prints (rank 0)."""

    source: DataSource
    score: ScoreOne
    rank: int = 0


@contextlib.contextmanager
def split_run(
    shard: str | None,
    source: DataSource,
    device: torch.device,
    *,
    split: str = "data",
    budget: int | None = None,
    tell: Callable[[Plan], None] | None = None,
) -> Iterator[DataPart]:
    """The split for this process; under torchrun, inside the launcher's process group.

    `split="layers"`: each shard (or rank) tracks its own share of the layers over all the data, instead of
    all the layers over its share of the data. `budget`: bytes the moments of one pass may hold (more passes
    when they do not fit; engine/passes.py); `tell` hears each checkpoint's plan."""
    if split not in SPLITS:
        raise SatcliError(f"--split-by must be one of {', '.join(SPLITS)}, got {split!r}")
    ranks = launched_ranks()
    if shard is not None and ranks is not None and ranks[1] > 1:
        raise SatcliError("a shard job cannot also run under torchrun; use one way of splitting the data")
    if split == "layers" and shard is None and (ranks is None or ranks[1] == 1):
        raise SatcliError("--split-by layers needs --shard I/K or torchrun")
    limit = budget if budget is not None else default_budget()
    if shard is not None:
        index, count = parse_shard(shard)
        if split == "layers":
            attrs = {**STORE_ATTRS, **layer_shard_attrs(index, count)}
            yield DataPart(source, layer_share(index, count, limit, tell, attrs))
            return
        part, plan = shard_source(source, index, count)
        attrs = {**STORE_ATTRS, **plan.to_attrs()}
        yield DataPart(part, budgeted(partial(score_checkpoint, attrs=attrs), limit, tell, attrs))
        return
    if ranks is None:
        yield DataPart(source, budgeted(score_checkpoint, limit, tell))
        return
    rank, world = ranks
    if split == "layers":
        with process_group(device):
            yield DataPart(source, partial(score_layer_rank, rank=rank, world=world, budget=limit), rank)
        return
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
            write_state(writer, state, result, options.activations_dtype, keep_moments=options.keep_moments)
        return replace(result, store=str(target))

    return score_gathered(loaded, source, options, None if target is None else write, on_batch)
