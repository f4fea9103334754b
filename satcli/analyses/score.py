"""The one scoring route: a checkpoint's state (live from the engine, or read from a store) into a result.

`analyze` and `report` both end here, so a stored checkpoint re-scored at the run's thresholds gives
exactly the numbers the run printed.
"""

from __future__ import annotations

from dataclasses import replace

from satcli.analyses.registry import LAYER_ANALYSES
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore, score_layer
from satcli.core.state import CheckpointMeta, CheckpointState, LayerState
from satcli.core.verdict import Thresholds, decide


def score_layer_state(layer: LayerState, delta: float) -> LayerScore:
    """k, saturation and flags from the layer's moments, plus each other analysis' entry."""
    stats, meta = layer.stats, layer.meta
    base = score_layer(
        meta.name,
        meta.type,
        stats.samples,
        stats.mean,
        stats.eigenvalues,
        delta,
        nonfinite=stats.nonfinite,
        reduction=meta.reduction,
    )
    extras = {}
    for name, element in layer.extras.items():
        analysis = LAYER_ANALYSES.get(name)
        if stats.m2 is None and name in layer.entries:
            entry = layer.entries[name]  # scored when the moments were at hand (a store without m2)
        else:
            entry = analysis.score(stats, element) if analysis is not None else None
        if entry is not None:
            extras[name] = dict(entry)
    return replace(base, extras=extras) if extras else base


def score_state(state: CheckpointState, thresholds: Thresholds, store: str | None = None) -> CheckpointResult:
    """Every layer scored at `thresholds`, the verdict over them, and where the checkpoint came from."""
    scores = tuple(score_layer_state(layer, thresholds.delta) for layer in state.layers)
    return result_of(state.meta, scores, thresholds, state.num_inputs, store)


def result_of(
    meta: CheckpointMeta,
    scores: tuple[LayerScore, ...],
    thresholds: Thresholds,
    num_inputs: int,
    store: str | None = None,
) -> CheckpointResult:
    """The checkpoint's result from its layers' scores (in forward order): the verdict over them."""
    return CheckpointResult(
        model=meta.model_path,
        sha256=meta.model_sha256,
        model_format=meta.model_format,
        data=meta.data_spec,
        layers=scores,
        verdict=decide(scores, thresholds, num_inputs, _output_layer(meta.options)),
        options={**meta.options, "num_inputs": num_inputs},
        store=store,
    )


def _output_layer(options: dict) -> str | None:
    """The model's last tracked layer as the run recorded it (older stores: None, the last scored layer)."""
    name = options.get("output_layer")
    return name if isinstance(name, str) else None
