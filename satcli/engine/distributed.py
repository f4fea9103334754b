"""Splitting one analysis over processes (docs/method.md sec. 7): disjoint data shards, exact merge of float64 states.

Two ways in: `torchrun` (every rank analyzes its shard, the states are all-gathered and merged in rank
order, only rank 0 writes) and job arrays (`--shard I/K` writes a partial store; `satcli merge` joins them).
Shards are contiguous runs of the data in order, so shard 0's inputs come first, as in one process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
from torch.utils.data import Subset

from satcli.analyses.merge import distributed_record, merge_states
from satcli.analyses.score import score_state
from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointState
from satcli.data import DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import Observer, analyze
from satcli.engine.sweep import ProgressObserver, StateObserver
from satcli.errors import SatcliError, one_line
from satcli.models import LoadedModel

# torchrun (and most launchers) set these; MASTER_ADDR/PORT are read by init_process_group itself.
DIST_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based) of `total` inputs: inputs start..stop-1 in data order."""

    index: int
    count: int
    total: int

    @property
    def start(self) -> int:
        return self.total * self.index // self.count

    @property
    def stop(self) -> int:
        return self.total * (self.index + 1) // self.count

    def to_attrs(self) -> dict[str, object]:
        """The store's file attributes marking a partial store."""
        return {
            "partial": True,
            "shard_index": self.index,
            "shard_count": self.count,
            "shard_start": self.start,
            "shard_stop": self.stop,
            "shard_total": self.total,
        }


def parse_shard(text: str) -> tuple[int, int]:
    """'I/K' with 0 <= I < K."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise SatcliError(f"a shard is written I/K such as 0/4 (shard I of K, counted from 0), got {text!r}")
    i, k = int(index), int(count)
    if k < 1 or i >= k:
        raise SatcliError(f"shard {text!r} does not exist: I/K needs 0 <= I < K")
    return i, k


def shard_source(source: DataSource, index: int, count: int) -> tuple[DataSource, Shard]:
    """The contiguous shard `index` of `count` of a data source (disjoint, deterministic, in data order)."""
    shard = Shard(index, count, source.num_samples)
    if shard.stop <= shard.start:
        raise SatcliError(f"shard {index}/{count} of {source.description} is empty ({source.num_samples} inputs)")
    subset = Subset(source.dataset, range(shard.start, shard.stop))
    return replace(source, dataset=subset, num_samples=shard.stop - shard.start), shard


def launched_ranks() -> tuple[int, int] | None:
    """(rank, world size) when a launcher such as torchrun set the torch.distributed environment, else None."""
    if not all(os.environ.get(name) for name in DIST_ENV):
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError as exc:
        raise SatcliError(f"bad torch.distributed environment: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise SatcliError(f"bad torch.distributed environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def local_device(device: torch.device) -> torch.device:
    """The rank's own GPU (LOCAL_RANK) for a bare `cuda`; other devices as given."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the launcher's process group (NCCL on GPUs, gloo on CPU) for the block, unless already joined."""
    if dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as exc:
        raise SatcliError(f"cannot join the torch.distributed process group ({backend}): {one_line(exc)}") from None
    try:
        yield
        if backend == "gloo":
            # Every rank waits for the others (rank 0 may still be writing a store) before tearing gloo down: a
            # rank leaving while a peer still drains its last collective could abort that peer at exit. A peer
            # that died closed its sockets, so the barrier fails at once; a finished rank does not fail on it.
            with contextlib.suppress(RuntimeError):
                dist.barrier()
    finally:
        dist.destroy_process_group()


def gather_objects(value: object) -> list[object]:
    """Every rank's `value`, in rank order, on every rank (gloo or NCCL); [value] outside a process group."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [value]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def merged_checkpoint(
    parts: Sequence[CheckpointState], options: AnalysisOptions
) -> tuple[CheckpointState, CheckpointResult]:
    """The parts merged in order and scored; the state's options record the split."""
    first = parts[0].meta
    meta = replace(first, options={**first.options, "distributed": distributed_record(parts)})
    state = merge_states(parts, meta)
    return state, score_state(state, options.thresholds)


def score_gathered(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    write: Callable[[CheckpointState, CheckpointResult], CheckpointResult] | None,
    on_batch: Callable[[int], None] | None = None,
) -> CheckpointResult:
    """Analyze this rank's shard, all-gather every rank's state, merge in rank order; rank 0 calls `write`.

    A failure on any rank fails the checkpoint on every rank (no rank is left waiting in a collective).
    """
    capture = StateObserver()
    observers: list[Observer] = [capture] + ([] if on_batch is None else [ProgressObserver(on_batch)])
    error = None
    try:
        analyze(loaded, source, replace(options, store_activations=False), observers)
    except SatcliError as exc:
        error = str(exc)
    gathered = gather_objects(error if error is not None else capture.state)
    failures = [f"rank {rank}: {item}" for rank, item in enumerate(gathered) if isinstance(item, str)]
    if failures:
        raise SatcliError("; ".join(failures))
    parts = [item for item in gathered if isinstance(item, CheckpointState)]
    state, result = merged_checkpoint(parts, options)
    if write is not None and (not dist.is_initialized() or dist.get_rank() == 0):
        result = write(state, result)
    return result
