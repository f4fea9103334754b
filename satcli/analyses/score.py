"""The one scoring route: a checkpoint's state (live from the engine, or read from a store) into a result.

`analyze` and `report` both end here, so a stored checkpoint re-scored at the run's thresholds gives
exactly the numbers the run printed.
"""

from __future__ import annotations

from dataclasses import replace

from satcli.analyses.registry import LAYER_ANALYSES
from satcli.core.precision import certify_k
from satcli.core.results import CheckpointResult
from satcli.core.spectral import FLAG_DEAD, FLAG_ROUNDING, FLAG_UNDERSAMPLED, LayerScore, score_layer
from satcli.core.state import CheckpointMeta, CheckpointState, LayerState, LayerStats
from satcli.core.verdict import Thresholds, decide


def score_layer_state(layer: LayerState, delta: float) -> LayerScore:
    """k, saturation and flags from the layer's moments, plus the keys each other analysis adds: those derived
    from the moments always, the others when the layer holds their state (an analysis this satcli does not
    know is left unscored; score_state names it)."""
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
    base = certified(base, stats, delta)
    extras: dict[str, object] = dict(base.extras)
    for name, analysis in LAYER_ANALYSES.items():
        if not analysis.derived and name not in layer.extras:
            continue
        if stats.m2 is None and name in layer.entries:
            entry = {name: layer.entries[name]}  # scored when the moments were at hand (a store without m2)
        else:
            required = {other: layer.extras.get(other) for other in analysis.requires}
            entry = analysis.score(stats, layer.extras.get(name), required)
        if entry is not None:
            extras.update(entry)
    return replace(base, extras=extras) if extras else base


def certified(score: LayerScore, stats: LayerStats, delta: float) -> LayerScore:
    """A float32 run's layer with its k certificate (docs/method.md sec. 1) as the "float32" entry, flagged
    FLAG_ROUNDING when the exact k may differ. The range obeys the same rules as k: 0 for a dead layer, at
    most n - 1 when undersampled. The trace is the stored eigenvalues' sum, so a store without m2 re-scores
    to the same entry."""
    if stats.rounding is None or score.k is None:
        return score
    cert = certify_k(stats.eigenvalues, stats.rounding, delta)
    low, high = (0 if FLAG_DEAD in score.flags else cert.k_low), cert.k_high
    if FLAG_UNDERSAMPLED in score.flags:
        low, high = min(low, stats.samples - 1), min(high, stats.samples - 1)
    sure = low == score.k == high
    entry = {"eps": float(stats.rounding), "k_low": low, "k_high": high, "certified": sure}
    flags = score.flags if sure else (*score.flags, FLAG_ROUNDING)
    return replace(score, flags=flags, extras={**score.extras, "float32": entry})


def _across(scores: tuple[LayerScore, ...]) -> tuple[LayerScore, ...]:
    """The layers with the keys analyses derive across layers (in forward order) added to their entries."""
    for analysis in LAYER_ANALYSES.values():
        added = analysis.across([score.extras for score in scores])
        if added is not None:
            scores = tuple(
                replace(score, extras={**score.extras, **extra}) if extra else score
                for score, extra in zip(scores, added, strict=True)
            )
    return scores


def unknown_analyses(state: CheckpointState) -> list[str]:
    """Analyses whose state a stored checkpoint holds but this satcli has no class for (kept, not scored)."""
    names = {name for layer in state.layers for name in layer.extras if name not in LAYER_ANALYSES}
    return sorted(names)


def score_state(state: CheckpointState, thresholds: Thresholds, store: str | None = None) -> CheckpointResult:
    """Every layer scored at `thresholds`, the verdict over them, and where the checkpoint came from."""
    scores = tuple(score_layer_state(layer, thresholds.delta) for layer in state.layers)
    return result_of(state.meta, scores, thresholds, state.num_inputs, store, unknown_analyses(state))


def result_of(
    meta: CheckpointMeta,
    scores: tuple[LayerScore, ...],
    thresholds: Thresholds,
    num_inputs: int,
    store: str | None = None,
    unknown: list[str] | None = None,
) -> CheckpointResult:
    """The checkpoint's result from its layers' scores (in forward order): the keys analyses derive across
    layers, then the verdict over them."""
    scores = _across(scores)
    return CheckpointResult(
        model=meta.model_path,
        sha256=meta.model_sha256,
        model_format=meta.model_format,
        data=meta.data_spec,
        layers=scores,
        verdict=decide(scores, thresholds, num_inputs, _output_layer(meta.options)),
        options={**meta.options, "num_inputs": num_inputs, **({"unknown_analyses": unknown} if unknown else {})},
        store=store,
    )


def _output_layer(options: dict) -> str | None:
    """The model's last tracked layer as the run recorded it (older stores: None, the last scored layer)."""
    name = options.get("output_layer")
    return name if isinstance(name, str) else None
