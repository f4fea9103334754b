"""The batch loop: run each batch through the taps, reduce every tracked output to samples, and hand the
samples and the batch's labels to every analysis; observers (store writer, progress) watch from outside.

It prints nothing and writes nothing itself: the store is one observer among others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from satcli.analyses.base import Analysis
from satcli.analyses.registry import LAYER_ANALYSES
from satcli.analyses.saturation import SaturationAnalysis
from satcli.analyses.score import score_state
from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta, LayerState
from satcli.data import Batch, DataSource
from satcli.engine.nonfinite import NonFiniteCount, flag_unmeasured
from satcli.engine.options import AnalysisOptions
from satcli.engine.threads import scoring_threads
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel
from satcli.taps import Layer, input_rows, open_taps, sample_view
from satcli.taps.reduce import sample_labels


class Observer(Protocol):
    """Watches a run without changing it: told the layers once, then each batch, then the final state."""

    wants_rows: bool

    def started(self, meta: CheckpointMeta, layers: Sequence[LayerMeta]) -> None: ...

    def batch(self, rows: dict[str, torch.Tensor], labels: torch.Tensor | None, count: int) -> None: ...

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None: ...


@dataclass
class _Seen:
    layer: Layer
    reduction: str
    per_input: bool
    calls: list[torch.Tensor]


def build_analyses(options: AnalysisOptions, has_labels: bool, device: torch.device) -> list[Analysis]:
    """Saturation always; the layer analyses the options ask for (classes: on by default when labelled)."""
    chosen: list[Analysis] = [SaturationAnalysis(device, options.precision)]
    wanted = options.extra_analyses(has_labels)
    chosen += [LAYER_ANALYSES[name](device) for name in wanted]
    return chosen


def checkpoint_meta(model: LoadedModel, data: DataSource, options: AnalysisOptions) -> CheckpointMeta:
    """Where the numbers come from, as the store and JSON record it."""
    record = dict(options.describe(data.has_labels), data=data.description, device=str(model.device), num_inputs=0)
    if data.notes:
        record["data_notes"] = list(data.notes)
    return CheckpointMeta(
        model_path=str(model.path),
        model_sha256=model.sha256,
        model_format=model.format,
        data_spec=data.spec,
        options=record,
        thresholds=options.thresholds.to_dict(),
    )


def analyze(
    model: LoadedModel, data: DataSource, options: AnalysisOptions, observers: Sequence[Observer] = ()
) -> CheckpointResult:
    """Score one loaded model on one data source; observers see the layers, each batch and the result."""
    device = model.device
    analyses = build_analyses(options, data.has_labels, device)
    meta = checkpoint_meta(model, data, options)
    seen: dict[str, _Seen] = {}
    keep_rows = any(o.wants_rows for o in observers)
    now: list[Batch] = []
    nonfinite = NonFiniteCount(options.on_nonfinite)

    def sink(layer: Layer, out: torch.Tensor) -> None:
        # Runs inside the forward pass, before later in-place ops of the model can change `out`.
        batch = now[-1]
        samples = sample_view(out, layer, options.reduction, batch.mask)
        entry = seen.get(layer.name)
        if entry is None:
            reduction = options.reduction.name_for(layer, out.ndim)
            entry = seen[layer.name] = _Seen(layer, reduction, _per_input(samples, out), [])
        labels = sample_labels(batch.labels, samples, int(out.shape[0]), batch.mask)
        measured, labels = nonfinite.finite_samples(layer.name, samples, labels)
        for analysis in analyses:
            analysis.update(layer, measured, labels)
        if keep_rows:
            entry.calls.append(input_rows(out, samples, layer, batch.mask))

    num_inputs = 0
    started = False
    with open_taps(model.module, options.include, options.exclude) as taps:
        for raw in data.iter_batches():
            batch = nonfinite.finite_batch(raw, num_inputs + nonfinite.inputs, data.description)
            if batch is None:
                continue
            now[:] = [on_device(batch, device)]
            for entry in seen.values():
                entry.calls.clear()
            taps.stream(now[-1].inputs, sink)
            if not started:
                for observer in observers:
                    observer.started(meta, _layer_metas(seen))
                started = True
            rows = {name: _rows(e.calls) for name, e in seen.items()} if keep_rows else {}
            count = batch_size(batch)
            for observer in observers:
                observer.batch(rows, batch.labels, count)
            num_inputs += count
    _report_eigen(analyses, observers)
    if not seen:
        if nonfinite.inputs:
            raise DataError(f"every one of the {nonfinite.inputs} inputs of {data.description} holds NaN or inf")
        raise SatcliError(f"the data set {data.description} gave no samples")
    untracked = [u.to_dict() for u in taps.untracked]
    learnt = {"nonfinite": nonfinite.to_dict(), "untracked": untracked, "output_layer": taps.output_layer}
    meta = replace(meta, options={**meta.options, **learnt})
    widest = max(int(e.layer.width or 0) for e in seen.values())
    with scoring_threads(widest):  # eigendecompositions: see engine/threads.py
        state = _checkpoint_state(meta, seen, analyses, num_inputs, nonfinite)
        result = score_state(state, options.thresholds)
    if options.weight_spectra:
        result = with_weight_spectra(result, model.module)
    for observer in observers:
        observer.finished(state, result)
    return result


def _report_eigen(analyses: Sequence[Analysis], observers: Sequence[Observer]) -> None:
    """Let observers that want it (a progress bar) follow the eigen step, which dominates wide layers."""
    hooks = [hook for hook in (getattr(o, "eigen", None) for o in observers) if hook is not None]
    for analysis in analyses:
        if hooks and isinstance(analysis, SaturationAnalysis):
            analysis.on_eigen = lambda done, total: [hook(done, total) for hook in hooks]


def on_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on the model's device (labels and mask too: the analyses run there)."""
    inputs = batch.inputs
    moved = (
        {key: value.to(device, non_blocking=True) for key, value in inputs.items()}
        if isinstance(inputs, dict)
        else inputs.to(device, non_blocking=True)
    )
    labels = None if batch.labels is None else batch.labels.to(device)
    mask = None if batch.mask is None else batch.mask.to(device)
    return Batch(moved, labels, mask)


def batch_size(batch: Batch) -> int:
    """Inputs in a batch."""
    inputs = batch.inputs
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    return int(first.shape[0])


def _per_input(samples: torch.Tensor, out: torch.Tensor) -> bool:
    """True when each input gives exactly one sample (so stored rows are the samples themselves)."""
    return samples.shape[0] == out.shape[0] and samples[:1].numel() == samples.shape[-1]


def _layer_metas(seen: dict[str, _Seen]) -> list[LayerMeta]:
    return [
        LayerMeta(
            name=e.layer.name,
            type=e.layer.type,
            kind=e.layer.kind,
            width=int(e.layer.width or 0),
            order=int(e.layer.order or 0),
            reduction=e.reduction,
            activations_reduction="none" if e.per_input else "mean",
        )
        for e in seen.values()
    ]


def _rows(calls: list[torch.Tensor]) -> torch.Tensor:
    """One row per input; a layer called several times per forward pass keeps the mean of its calls."""
    return calls[0] if len(calls) == 1 else torch.stack(calls).mean(dim=0)


def _checkpoint_state(
    meta: CheckpointMeta,
    seen: dict[str, _Seen],
    analyses: Sequence[Analysis],
    num_inputs: int,
    nonfinite: NonFiniteCount,
) -> CheckpointState:
    """The run's final state: every layer's moments and the other analyses' elements, in forward order."""
    states = {analysis.name: analysis.state() for analysis in analyses}
    stats = flag_unmeasured(states.pop(SaturationAnalysis.name), nonfinite)  # type: ignore[arg-type]
    layers = []
    for layer_meta in _layer_metas(seen):
        extras = {name: state[layer_meta.name] for name, state in states.items() if layer_meta.name in state}
        layers.append(LayerState(layer_meta, stats[layer_meta.name], extras))  # type: ignore[arg-type]
    options = {**meta.options, "num_inputs": num_inputs}
    return CheckpointState(
        CheckpointMeta(meta.model_path, meta.model_sha256, meta.model_format, meta.data_spec, options, meta.thresholds),
        tuple(layers),
        num_inputs,
    )


def with_weight_spectra(result: CheckpointResult, module: torch.nn.Module) -> CheckpointResult:
    """The result with each layer's weight spectrum under `weights` (data-free; not kept in the store)."""
    from satcli.weights import layer_weight_spectra

    spectra = layer_weight_spectra(module, [layer.name for layer in result.layers])
    layers = tuple(replace(layer, extras={**layer.extras, "weights": spectra[layer.name]}) for layer in result.layers)
    return replace(result, layers=layers)
