"""Score one checkpoint within a memory budget: the layers in groups, one exact pass over the data per group.

One forward pass on the first input gives the tracked layers' widths; engine/plan.py groups them so that the
moments of a group fit the budget; each group is one call of engine/run.py's `analyze` with `include` =
its layers, and the groups' states are joined in forward order. Every pass sees the same data in the same
order, so each layer's numbers are those of a single pass (docs/performance.md, "Memory rule").
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from satcli.analyses.score import result_of, score_layer_state
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.core.state import CheckpointState, LayerState, LayerStats
from satcli.data import DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.plan import Plan, plan_groups
from satcli.engine.run import Observer, analyze, on_device
from satcli.engine.sweep import STORE_ATTRS, ProgressObserver, ScoreOne, StateObserver
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.store.merge import write_state
from satcli.store.writer import StoreWriter
from satcli.taps import open_taps


@dataclass(frozen=True)
class Discovery:
    """The tracked layers (name, width) in forward order, what the selection leaves untracked, the number of
    classes and what analyses other than the class sums hold per column of width (Analysis.column_bytes)."""

    layers: tuple[tuple[str, int], ...]
    untracked: list[dict[str, object]]
    classes: int
    analysis_bytes: int = 0

    @property
    def column_bytes(self) -> int:
        """Bytes per column of width a layer holds besides its moments (engine/plan.py): class sums and the rest."""
        return 8 * self.classes + self.analysis_bytes


def discover_widths(model: LoadedModel, data: DataSource, options: AnalysisOptions) -> Discovery:
    """The selected layers' output widths in forward order (as `satcli layers --data` finds them) from one
    forward pass on the first input of the first batch (a layer's width does not depend on the batch size;
    the whole batch cost a full batch's forward pass more per run), or on the whole first batch when the
    model takes no other batch size (an export traced for it); and the number of distinct labels in it."""
    batch = on_device(next(iter(data.iter_batches())), model.device)
    first = _first_input(batch.inputs)
    found = None
    if first is not None:
        try:
            found = _widths(model, first, options)
        except Exception:  # any refusal of the smaller batch (a static export): the whole batch decides
            found = None
    layers, untracked = found if found is not None else _widths(model, batch.inputs, options)
    wanted = options.extra_analyses(data.has_labels)
    classes = int(torch.unique(batch.labels).numel()) if "classes" in wanted and batch.labels is not None else 0
    return Discovery(layers, untracked, classes, options.column_bytes(data.has_labels))


def _widths(
    model: LoadedModel, inputs: object, options: AnalysisOptions
) -> tuple[tuple[tuple[str, int], ...], list[dict[str, object]]]:
    """The tracked layers (name, width) and the untracked ones of one forward pass on `inputs`."""
    with open_taps(model.module, options.include, options.exclude) as taps:
        taps.stream(inputs, lambda layer, out: None)
        layers = tuple((layer.name, int(layer.width or 0)) for layer in taps.layers)
        return layers, [u.to_dict() for u in taps.untracked]


def _first_input(inputs: object) -> object | None:
    """The batch cut to its first input (every tensor's first row), or None when it holds one input already."""
    tensors = inputs if isinstance(inputs, dict) else {None: inputs}
    if not all(isinstance(t, torch.Tensor) and t.ndim > 0 for t in tensors.values()):
        return None
    if all(t.shape[0] <= 1 for t in tensors.values()):
        return None
    cut = {key: t[:1] for key, t in tensors.items()}
    return cut if isinstance(inputs, dict) else cut[None]


def budgeted(
    score: ScoreOne,
    budget: int,
    tell: Callable[[Plan], None] | None = None,
    attrs: Mapping[str, object] = STORE_ATTRS,
) -> ScoreOne:
    """`score` (score_checkpoint or a shard's, writing a store with file attributes `attrs`) for checkpoints
    whose moments fit `budget` bytes in one pass; several exact passes otherwise. `tell(plan)` hears each
    checkpoint's plan (the CLI prints it)."""

    def run(
        loaded: LoadedModel,
        source: DataSource,
        options: AnalysisOptions,
        target: Path | None,
        *,
        append: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> CheckpointResult:
        found = discover_widths(loaded, source, options)
        plan = plan_groups(found.layers, budget, found.column_bytes)
        if tell is not None:
            tell(plan)
        if plan.passes == 1:
            return score(loaded, source, options, target, append=append, on_batch=on_batch)
        if options.store_activations:
            raise SatcliError(
                f"--activations needs every layer in one pass, but the memory budget needs {plan.passes}; "
                "raise --memory-budget or leave out --activations"
            )
        state, scores = run_passes(loaded, source, options, plan, found, on_batch)
        return finish(loaded, options, state, scores, target, append=append, attrs=attrs)

    return run


def run_passes(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    plan: Plan,
    found: Discovery,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[CheckpointState, tuple[LayerScore, ...]]:
    """One pass per group of `plan`; the groups' layers joined in forward order with their scores.

    m2 is dropped after each pass unless options.keep_moments; other analyses' entries, scored while it
    was at hand, stay with the layer (LayerState.entries), so the joined run holds eigenvalues and means only."""
    passes = [
        _one_pass(loaded, source, options, group, i, plan.passes, on_batch) for i, group in enumerate(plan.groups)
    ]
    counts = {state.num_inputs for state, _ in passes}
    if len(counts) > 1:
        raise SatcliError(
            f"the passes saw different numbers of inputs ({sorted(counts)}): the data changed between them"
        )
    order = {name: index for index, (name, _) in enumerate(found.layers)}
    joined = sorted(
        ((layer, score) for state, scores in passes for layer, score in zip(state.layers, scores, strict=True)),
        key=lambda item: order[item[0].meta.name],
    )
    layers = tuple(replace(layer, meta=replace(layer.meta, order=order[layer.meta.name])) for layer, _ in joined)
    first = passes[0][0]  # the first pass' options: the model's output layer, non-finite counts, ...
    record = {
        **first.meta.options,
        "layers": list(options.include),
        "exclude": list(options.exclude),
        "untracked": found.untracked,
        "memory_passes": plan.passes,
    }
    state = CheckpointState(replace(first.meta, options=record), layers, first.num_inputs)
    return state, tuple(score for _, score in joined)


def finish(
    loaded: LoadedModel,
    options: AnalysisOptions,
    state: CheckpointState,
    scores: tuple[LayerScore, ...],
    target: Path | None,
    *,
    append: bool = False,
    attrs: Mapping[str, object] = STORE_ATTRS,
) -> CheckpointResult:
    """The joined state's result (verdict over every layer), written to `target` when given."""
    result = result_of(state.meta, scores, options.thresholds, state.num_inputs)
    if target is None:
        return result
    with StoreWriter(target, attrs, append=append) as writer:
        write_state(writer, state, result, options.activations_dtype, keep_moments=options.keep_moments)
    return replace(result, store=str(target))


def _one_pass(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    group: Sequence[str],
    index: int,
    total: int,
    on_batch: Callable[[int], None] | None,
) -> tuple[CheckpointState, list[LayerScore]]:
    """One pass tracking exactly `group`; its state (m2 dropped where nothing needs it) and layer scores."""
    phase = getattr(on_batch, "phase", None)
    if phase is not None:
        phase(f"pass {index + 1}/{total}")
    capture = StateObserver()
    observers: list[Observer] = [capture]
    if on_batch is not None:
        # The bar counts every pass: each input once per pass, scaled so the bar fills once.
        observers.append(ProgressObserver(lambda count: on_batch(count / total), getattr(on_batch, "eigen", None)))
    include = tuple(glob.escape(name) for name in group)
    analyze(loaded, source, replace(options, include=include), observers)
    state = capture.state
    assert state is not None
    scores = [score_layer_state(layer, options.thresholds.delta) for layer in state.layers]
    layers = tuple(
        layer if options.keep_moments else _lighter(layer, score)
        for layer, score in zip(state.layers, scores, strict=True)
    )
    return replace(state, layers=layers), scores


def _lighter(layer: LayerState, score: LayerScore) -> LayerState:
    """The layer without its d x d m2, keeping other analyses' entries scored while m2 was at hand."""
    if layer.stats.m2 is None:
        return layer
    entries = {name: dict(score.extras[name]) for name in layer.extras if name in score.extras}
    stats: LayerStats = replace(layer.stats, m2=None)
    return replace(layer, stats=stats, entries=entries)
