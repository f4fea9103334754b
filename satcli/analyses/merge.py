"""Exact merge of partial runs (docs/method.md sec. 7): shards, processes or stores of the same checkpoint.

Each part's float64 state goes through the analyses' own ``merge`` in the order given (Chan merge for the
moments, re-shifted addition for the per-class sums), so K parts give one run's numbers to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from satcli.analyses.base import Analysis
from satcli.analyses.registry import LAYER_ANALYSES
from satcli.analyses.saturation import SaturationAnalysis
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta, LayerState, OpaqueState
from satcli.errors import SatcliError


def merge_states(parts: Sequence[CheckpointState], meta: CheckpointMeta | None = None) -> CheckpointState:
    """One state from parts of the same checkpoint, merged in the given order; layers in the first part's order.

    `meta` replaces the first part's metadata (its options' num_inputs is set to the total either way).
    """
    if not parts:
        raise SatcliError("nothing to merge")
    layers: dict[str, LayerMeta] = {}
    for part in parts:
        for layer in part.layers:
            known = layers.setdefault(layer.meta.name, layer.meta)
            if known.width != layer.meta.width:
                raise SatcliError(
                    f"layer {layer.meta.name!r} has width {known.width} in one part, {layer.meta.width} in another"
                )
    saturation = SaturationAnalysis()
    others: dict[str, Analysis] = {}
    for part in parts:
        saturation.merge({layer.meta.name: layer.stats for layer in part.layers})
        for name in sorted({name for layer in part.layers for name in layer.extras}):
            elements = {layer.meta.name: layer.extras[name] for layer in part.layers if name in layer.extras}
            if name not in LAYER_ANALYSES or any(isinstance(e, OpaqueState) for e in elements.values()):
                raise SatcliError(
                    f"cannot merge the state of analysis {name!r}: this satcli does not know it (or its state "
                    "version); merge with the satcli that wrote it"
                )
            analysis = others.setdefault(name, LAYER_ANALYSES[name]())
            analysis.merge(elements)
    stats = saturation.state()
    extras = {name: analysis.state() for name, analysis in others.items()}
    merged = tuple(
        LayerState(
            layer_meta,
            stats[name],  # type: ignore[arg-type]
            {analysis: element[name] for analysis, element in extras.items() if name in element},
        )
        for name, layer_meta in layers.items()
    )
    total = sum(part.num_inputs for part in parts)
    base = meta or parts[0].meta
    options = {**base.options, "num_inputs": total}
    return CheckpointState(
        CheckpointMeta(base.model_path, base.model_sha256, base.model_format, base.data_spec, options, base.thresholds),
        merged,
        total,
    )


def join_layer_parts(parts: Sequence[CheckpointState], record: Mapping[str, object]) -> CheckpointState:
    """One state from parts holding disjoint layers of the same run, layers in forward order (their order)."""
    seen: dict[str, int] = {}
    for rank, part in enumerate(parts):
        for layer in part.layers:
            if layer.meta.name in seen:
                raise SatcliError(f"layer {layer.meta.name!r} is in parts {seen[layer.meta.name]} and {rank}: overlap")
            seen[layer.meta.name] = rank
    counts = {part.num_inputs for part in parts}
    if len(counts) > 1:
        raise SatcliError(f"the parts saw different numbers of inputs ({sorted(counts)})")
    layers = tuple(sorted((layer for part in parts for layer in part.layers), key=lambda layer: layer.meta.order))
    first = parts[0].meta
    return CheckpointState(replace(first, options={**first.options, **record}), layers, parts[0].num_inputs)


def distributed_record(parts: Sequence[CheckpointState]) -> dict[str, object]:
    """What the JSON and the store say about a run split over processes or shards (merged in this order)."""
    return {"world_size": len(parts), "samples_per_rank": [part.num_inputs for part in parts]}
