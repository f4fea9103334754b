"""Join stores: the partial stores of a shard set into one store, or full stores into one trajectory store.

A shard set must be complete and disjoint (shards 0..K-1 of the same K and the same inputs, each once) and
its parts must come from the same model (sha256), data spec, options and thresholds, checkpoint by
checkpoint. Their float64 states merge exactly in shard order (docs/method.md sec. 7); stored activations and
labels are concatenated in shard order, which is the data order of one process.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from satcli.analyses.merge import distributed_record, join_layer_parts, merge_states
from satcli.analyses.score import score_state
from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointState
from satcli.errors import SatcliError
from satcli.store.checkpoint import CheckpointWriter
from satcli.store.observer import StoreObserver
from satcli.store.reader import StoredCheckpoint, open_store, read_store
from satcli.store.rescore import stored_thresholds
from satcli.store.writer import StoreWriter

# Options that may differ between the parts of one checkpoint (they describe the part, not the run).
PART_OPTIONS = frozenset({"num_inputs", "distributed", "device", "memory_passes"})
# Activation rows copied per read when concatenating parts.
COPY_ROWS = 8192


@dataclass(frozen=True)
class StorePart:
    """One input store: its file attributes and finished checkpoints."""

    path: Path
    attrs: dict[str, object]
    checkpoints: list[StoredCheckpoint]

    @property
    def partial(self) -> bool:
        return bool(self.attrs.get("partial", False))


def read_part(path: Path) -> StorePart:
    """A store to merge (partial stores allowed here, and only here)."""
    attrs, checkpoints = read_store(path)
    if not checkpoints:
        raise SatcliError(f"{path} holds no finished checkpoint")
    return StorePart(Path(path), attrs, checkpoints)


def write_state(
    writer: StoreWriter,
    state: CheckpointState,
    result: CheckpointResult,
    activations_dtype: str = "float32",
    keep_moments: bool = True,
) -> None:
    """Add one checkpoint group holding a state's statistics (no activations) to an open store;
    `keep_moments`: with each layer's m2 (a partial store's writer keeps it anyway)."""
    keep = keep_moments or writer.partial
    observer = StoreObserver(writer, store_activations=False, activations_dtype=activations_dtype, keep_moments=keep)
    observer.started(state.meta, [layer.meta for layer in state.layers])
    observer.finished(state, result)


def merge_stores(paths: Sequence[Path], out: Path) -> list[CheckpointResult]:
    """Merge a complete shard set, or concatenate full stores, into `out` (written atomically)."""
    parts = [read_part(path) for path in paths]
    kinds = {part.partial for part in parts}
    if len(kinds) > 1:
        raise SatcliError("cannot merge partial (shard) stores with full stores; merge the shards first")
    if kinds == {True} and any(part.attrs.get("split") == "layers" for part in parts):
        parts = ordered_layer_parts(parts)
        with StoreWriter(out, {"command": "merge", "merged_shards": len(parts)}) as writer:
            return [_write_joined(writer, parts, j) for j in range(len(parts[0].checkpoints))]
    if kinds == {True}:
        parts = ordered_shards(parts)
        for part in parts:
            require_moments(part)
        attrs: dict[str, object] = {"command": "merge", "merged_shards": len(parts)}
        with StoreWriter(out, attrs) as writer:
            return [_write_merged(writer, parts, j) for j in range(len(parts[0].checkpoints))]
    with StoreWriter(out, {"command": "merge"}) as writer:
        return [
            _write_merged(writer, [part], j, checkpoint=True) for part in parts for j in range(len(part.checkpoints))
        ]


def require_moments(part: StorePart) -> None:
    """Refuse, in one line, a part whose layers lack the m2 a moment merge needs."""
    for checkpoint in part.checkpoints:
        bare = [layer.meta.name for layer in checkpoint.layers if layer.stats.m2 is None]
        if bare:
            raise SatcliError(
                f"{part.path} checkpoint {checkpoint.key} keeps no moments (m2) for {len(bare)} layer(s), "
                "which a merge needs; re-run analyze with --keep-moments"
            )


def _by_shard_index(parts: Sequence[StorePart], count: int, what: str) -> list[StorePart]:
    """The parts in shard-index order; a shard given twice (overlap) or missing (gap) is refused."""
    by_index: dict[int, StorePart] = {}
    for part in parts:
        index = int(part.attrs["shard_index"])
        if index in by_index:
            raise SatcliError(f"shard {index}/{count} is given twice ({by_index[index].path} and {part.path}): overlap")
        by_index[index] = part
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        raise SatcliError(f"{what} has a gap: shard(s) {', '.join(missing)} missing")
    return [by_index[i] for i in range(count)]


def ordered_layer_parts(parts: Sequence[StorePart]) -> list[StorePart]:
    """The layer-split parts in shard order, after checking they are one complete set of one split."""
    if any(part.attrs.get("split") != "layers" for part in parts):
        raise SatcliError("cannot merge layer-split parts (--split-by layers) with data shards")
    counts = {int(part.attrs["shard_count"]) for part in parts}
    if len(counts) > 1:
        raise SatcliError(f"the parts split the layers differently (shard counts {sorted(counts)})")
    ordered = _by_shard_index(parts, counts.pop(), "the layer split")
    if len({len(part.checkpoints) for part in ordered}) > 1:
        raise SatcliError("the parts hold different numbers of checkpoints")
    return ordered


def _write_joined(writer: StoreWriter, parts: Sequence[StorePart], j: int) -> CheckpointResult:
    """Checkpoint j of layer-split parts: their layers concatenated in forward order (no moment merge)."""
    chosen = [part.checkpoints[j] for part in parts]
    _check_same_run(chosen, [part.path for part in parts])
    state = join_layer_parts(
        [c.state() for c in chosen], {"distributed": {"world_size": len(parts), "split": "layers", "via": "shards"}}
    )
    total = {int(part.attrs.get("shard_layers_total", -1)) for part in parts}
    if total != {len(state.layers)}:
        raise SatcliError(f"the parts hold {len(state.layers)} layers but the model's selection has {sorted(total)}")
    result = score_state(state, stored_thresholds(chosen[0]))
    kept = all(layer.stats.m2 is not None for layer in state.layers) and bool(state.meta.options.get("keep_moments"))
    write_state(writer, state, result, keep_moments=kept)
    return result


def ordered_shards(parts: Sequence[StorePart]) -> list[StorePart]:
    """The parts in shard order, after checking they form one complete, disjoint shard set."""
    counts = {int(part.attrs["shard_count"]) for part in parts}
    totals = {int(part.attrs["shard_total"]) for part in parts}
    if len(counts) > 1 or len(totals) > 1:
        raise SatcliError(
            f"the parts split the data differently (shard counts {sorted(counts)}, input counts {sorted(totals)}); "
            "they overlap or leave gaps"
        )
    ordered = _by_shard_index(parts, counts.pop(), "the shard set")
    for before, after in itertools.pairwise(ordered):
        if int(before.attrs["shard_stop"]) != int(after.attrs["shard_start"]):
            raise SatcliError(f"{before.path} and {after.path} are not adjacent shards of the same inputs")
    lengths = {len(part.checkpoints) for part in ordered}
    if len(lengths) > 1:
        raise SatcliError(f"the parts hold different numbers of checkpoints ({sorted(lengths)})")
    return ordered


def _check_same_run(checkpoints: Sequence[StoredCheckpoint], paths: Sequence[Path]) -> None:
    first = checkpoints[0].meta
    for checkpoint, path in zip(checkpoints[1:], paths[1:], strict=True):
        meta = checkpoint.meta
        for what, a, b in (
            ("model (sha256)", first.model_sha256, meta.model_sha256),
            ("data spec", first.data_spec, meta.data_spec),
            ("options", _run_options(first.options), _run_options(meta.options)),
            ("thresholds", first.thresholds, meta.thresholds),
        ):
            if a != b:
                raise SatcliError(f"{path} checkpoint {checkpoint.key} has another {what} than {paths[0]}: {b} vs {a}")


def _run_options(options: Mapping[str, object]) -> dict[str, object]:
    return {key: value for key, value in options.items() if key not in PART_OPTIONS}


def _write_merged(
    writer: StoreWriter, parts: Sequence[StorePart], j: int, checkpoint: bool = False
) -> CheckpointResult:
    """Merge checkpoint j of every part (in order) into one new group of `writer`."""
    chosen = [part.checkpoints[j] for part in parts]
    paths = [part.path for part in parts]
    _check_same_run(chosen, paths)
    states = [c.state() for c in chosen]
    meta = chosen[0].meta
    if not checkpoint:
        record = {**distributed_record(states), "via": "shards"}
        meta = replace(meta, options={**meta.options, "distributed": record})
    state = (
        merge_states(states, meta) if len(states) > 1 else CheckpointState(meta, states[0].layers, states[0].num_inputs)
    )
    result = score_state(state, stored_thresholds(chosen[0]))
    layers = [layer.meta for layer in state.layers]
    with_rows = all(layer.has_activations for c in chosen for layer in c.layers)
    dtype = str(meta.options.get("activations_dtype", "float32"))
    # Concatenated stores keep m2 where they had it; merged shards as their run asked (--keep-moments).
    kept = all(layer.stats.m2 is not None for layer in state.layers) and (
        checkpoint or bool(meta.options.get("keep_moments", False))
    )
    group = writer.begin_checkpoint(
        meta, layers, store_activations=with_rows, activations_dtype=dtype, keep_moments=kept
    )
    if with_rows:
        for part, stored in zip(parts, chosen, strict=True):
            _copy_rows(group, part.path, stored.key, [layer.name for layer in layers])
    group.finish(
        {layer.meta.name: layer.stats for layer in state.layers},
        result.layers,
        num_inputs=state.num_inputs,
        extras={layer.meta.name: layer.extras for layer in state.layers},
    )
    return result


def _copy_rows(group: CheckpointWriter, path: Path, key: str, names: Sequence[str]) -> None:
    """Append one part's activations and labels to the new checkpoint, block by block."""
    with open_store(path) as file:
        source = file["checkpoints"][key]
        by_name = {str(g.attrs["name"]): g for g in source["layers"].values()}
        datasets = {name: by_name[name]["activations"] for name in names}
        labels = source.get("labels")
        total = int(source.attrs["num_inputs"])
        for start in range(0, total, COPY_ROWS):
            stop = min(total, start + COPY_ROWS)
            block = {name: np.asarray(ds[start:stop]) for name, ds in datasets.items()}
            group.append(block, None if labels is None else np.asarray(labels[start:stop]))
