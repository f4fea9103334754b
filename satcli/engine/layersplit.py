"""Layer groups across processes: each `--shard I/K --split-by layers` job (or torchrun rank) tracks its own
share of the layers over all the data, so each holds about 1/K of the moments; the parts join by
concatenating layers (satcli merge, or a gather under torchrun), with no moment merge."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch.distributed as dist

from satcli.analyses.merge import join_layer_parts
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.core.state import CheckpointState
from satcli.data import DataSource
from satcli.engine.distributed import gather_objects
from satcli.engine.options import AnalysisOptions
from satcli.engine.passes import Discovery, discover_widths, finish, run_passes
from satcli.engine.plan import Plan, plan_groups, split_layers
from satcli.engine.sweep import STORE_ATTRS, ScoreOne
from satcli.errors import SatcliError
from satcli.models import LoadedModel


def layer_shard_attrs(index: int, count: int) -> dict[str, object]:
    """The file attributes of a layer-split partial store (its data are all the data)."""
    return {"partial": True, "split": "layers", "shard_index": index, "shard_count": count}


def _share(
    loaded: LoadedModel, source: DataSource, options: AnalysisOptions, index: int, count: int, budget: int
) -> tuple[Discovery, Plan]:
    """This part's layers (of `count`) and the passes they need within `budget`."""
    if options.store_activations:
        raise SatcliError("--split-by layers stores no activations; leave out --activations")
    found = discover_widths(loaded, source, options)
    try:
        shares = split_layers(found.layers, count, found.column_bytes)
    except ValueError as exc:
        raise SatcliError(str(exc)) from None
    widths = dict(found.layers)
    share = [(name, widths[name]) for name in shares[index]]
    return found, plan_groups(share, budget, found.column_bytes)


def layer_share(
    index: int,
    count: int,
    budget: int,
    tell: Callable[[Plan], None] | None = None,
    attrs: Mapping[str, object] = STORE_ATTRS,
) -> ScoreOne:
    """Score one checkpoint's share `index` of `count` of the layers over all the data, into a partial store."""

    def run(
        loaded: LoadedModel,
        source: DataSource,
        options: AnalysisOptions,
        target: Path | None,
        *,
        append: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> CheckpointResult:
        found, plan = _share(loaded, source, options, index, count, budget)
        if tell is not None:
            tell(plan)
        state, scores = run_passes(loaded, source, options, plan, found, on_batch)
        part_attrs = {**attrs, "shard_layers_total": len(found.layers)}
        return finish(loaded, options, state, scores, target, append=append, attrs=part_attrs)

    return run


def score_layer_rank(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    target: Path | None,
    *,
    rank: int,
    world: int,
    budget: int,
    append: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> CheckpointResult:
    """Under torchrun: this rank's share of the layers over all the data; the shares gathered and joined on
    every rank (so every rank returns the result); rank 0 writes the store."""
    error, item = None, None
    try:
        found, plan = _share(loaded, source, options, rank, world, budget)
        item = run_passes(loaded, source, options, plan, found, on_batch)
    except SatcliError as exc:
        error = str(exc)
    gathered = gather_objects(error if error is not None else item)
    failures = [f"rank {r}: {g}" for r, g in enumerate(gathered) if isinstance(g, str)]
    if failures:
        raise SatcliError("; ".join(failures))
    pairs: list[tuple[CheckpointState, tuple[LayerScore, ...]]] = gathered  # type: ignore[assignment]
    record = {"distributed": {"world_size": world, "split": "layers"}}
    state = join_layer_parts([state for state, _ in pairs], record)
    by_name = {score.name: score for _, scores in pairs for score in scores}
    scores = tuple(by_name[layer.meta.name] for layer in state.layers)
    write_to = target if not dist.is_initialized() or dist.get_rank() == 0 else None
    return finish(loaded, options, state, scores, write_to, append=append)
