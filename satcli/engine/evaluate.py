"""The evaluation pass: after the fit pass, analyses that asked for one (`eval_pass`, e.g. the linear probes of
docs/method.md sec. 9) read the fit state and see every tracked layer's samples of labelled evaluation data.

The samples come from the same recording step as the fit pass (engine/recorder.py: the same reduction, labels
per sample and non-finite filtering), handed to `Analysis.evaluate` instead of `update`; the analyses' state
elements after the pass replace theirs in the fit state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch

from satcli.analyses.base import Analysis
from satcli.core.state import CheckpointState, LayerState
from satcli.data import Batch, DataSource
from satcli.engine.options import AnalysisOptions, recorded_options
from satcli.engine.recorder import Recorder
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel
from satcli.taps import Layer, open_taps


class _Evaluating:
    """An analysis seen by the recorder during the evaluation pass: its samples go to `evaluate`."""

    wants_index = False
    wants_affine = False
    positions = False
    derived = True  # the recorder's state leaves it out; evaluation_pass reads the analysis' own

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.name = analysis.name

    def update(self, layer: Layer, samples: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.analysis.evaluate(layer, samples, labels)

    def reset(self) -> None:
        return None


def evaluation_pass(
    model: LoadedModel,
    data: DataSource,
    options: AnalysisOptions,
    state: CheckpointState,
    analyses: Sequence[Analysis],
    advance: Callable[[int], None] | None = None,
) -> CheckpointState:
    """`state` with the elements of the analyses that evaluate, after one pass over `data` (labelled); the state
    unchanged (and no pass) when none of `analyses` evaluates."""
    from satcli.engine.run import batch_size, on_device  # the fit pass' batch helpers (run.py calls this module)

    chosen = [analysis for analysis in analyses if analysis.eval_pass]
    if not chosen:
        return state
    names = ", ".join(analysis.name for analysis in chosen)
    if not data.has_labels:
        raise DataError(f"the evaluation data {data.description} carry no labels; the {names} analysis needs them")
    for analysis in chosen:
        analysis.prepare(state)
    recorder = Recorder(options, [_Evaluating(analysis) for analysis in chosen])  # type: ignore[misc]
    fitted = {layer.meta.name for layer in state.layers}
    now: list[Batch] = []

    def sink(layer: Layer, out: torch.Tensor) -> None:
        if layer.name in fitted:
            recorder.record(layer, out, now[-1].mask, now[-1].labels)

    seen = 0
    with open_taps(model.module, options.include, options.exclude) as taps:
        for raw in data.iter_batches():
            batch = recorder.nonfinite.finite_batch(raw, seen + recorder.nonfinite.inputs, data.description)
            if batch is None:
                continue
            now[:] = [on_device(batch, model.device)]
            taps.stream(now[-1].inputs, sink)
            seen += batch_size(batch)
            if advance is not None:
                advance(batch_size(batch))
    if seen == 0:
        raise DataError(
            f"the evaluation pass of the {names} analysis got no inputs from {data.description} "
            "(a one-pass source cannot be read again: give evaluation data)"
        )
    options_record = {**state.meta.options, "eval_data": data.description}
    return with_elements(replace(state, meta=replace(state.meta, options=options_record)), chosen)


def with_elements(state: CheckpointState, analyses: Sequence[Analysis]) -> CheckpointState:
    """`state` whose layers hold the analyses' current state elements (replacing any they held)."""
    elements: dict[str, Mapping[str, object]] = {analysis.name: analysis.state() for analysis in analyses}
    layers = []
    for layer in state.layers:
        extras = dict(layer.extras)
        for name, element in elements.items():
            if layer.meta.name in element:
                extras[name] = element[layer.meta.name]
        layers.append(LayerState(layer.meta, layer.stats, extras))
    return replace(state, layers=tuple(layers))


def evaluate_stored_fit(
    model: LoadedModel,
    data: DataSource,
    state: CheckpointState,
    analyses: Sequence[Analysis],
    advance: Callable[[int], None] | None = None,
) -> CheckpointState:
    """A stored fit state (a merge of shards, whose parts each evaluated their own fit) evaluated on `data` with
    the model it was fitted on, reducing outputs and tracking layers as the fit recorded. Refuses another model
    (by content hash) and a state without moments, from which no probe can be fitted."""
    if state.meta.model_sha256 != model.sha256:
        raise SatcliError(
            f"the stored fit comes from {state.meta.model_path} (sha256 {state.meta.model_sha256[:12]}), not from "
            f"{model.path} (sha256 {model.sha256[:12]}): evaluate it with the model it was fitted on"
        )
    missing = [layer.meta.name for layer in state.layers if layer.stats.m2 is None]
    if missing:
        raise SatcliError(
            f"the stored fit keeps no moments for {len(missing)} layer(s) ({', '.join(missing[:3])}): "
            "a probe is fitted from them; write the shards and the merge with --keep-moments"
        )
    return evaluation_pass(model, data, recorded_options(state.meta.options), state, analyses, advance)
