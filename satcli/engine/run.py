"""The batch loop: run each batch through the taps and hand every tracked output, with the batch's mask and
labels, to the recorder (engine/recorder.py, the Monitor's too); observers (store writer, progress) watch.
Analyses that evaluate what they fitted get a second pass over the evaluation data (engine/evaluate.py).

It prints nothing and writes nothing itself: the store is one observer among others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import torch

from satcli.analyses.base import Analysis
from satcli.analyses.registry import build
from satcli.analyses.saturation import SaturationAnalysis
from satcli.analyses.score import score_state
from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta
from satcli.data import Batch, DataSource
from satcli.engine.evaluate import evaluation_pass
from satcli.engine.heap import HeapTrimmer
from satcli.engine.nonfinite import finite_rows
from satcli.engine.options import AnalysisOptions
from satcli.engine.recorder import Recorder
from satcli.engine.threads import scoring_threads
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel
from satcli.taps import AffineInput, Layer, input_rows, open_taps


class Observer(Protocol):
    """Watches a run without changing it: told the layers once, then each batch, then the final state."""

    wants_rows: bool

    def started(self, meta: CheckpointMeta, layers: Sequence[LayerMeta]) -> None: ...

    def batch(self, rows: dict[str, torch.Tensor], labels: torch.Tensor | None, count: int) -> None: ...

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None: ...


def build_analyses(options: AnalysisOptions, has_labels: bool, device: torch.device) -> list[Analysis]:
    """Saturation always, the analyses that run by default and those the options ask for (analyses/registry.py)."""
    return build(options.chosen(has_labels), device)


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
    recorder = Recorder(options, build_analyses(options, data.has_labels, device))
    meta = checkpoint_meta(model, data, options)
    keep_rows = any(o.wants_rows for o in observers)
    calls: dict[str, list[torch.Tensor]] = {}
    now: list[Batch] = []
    # Each kept input's index in the whole data set, for analyses that choose samples by it (reservoirs).
    positions: list[torch.Tensor | None] = [None]
    first_index = data_offset(data)

    def sink(layer: Layer, out: torch.Tensor, source: AffineInput | None = None) -> None:
        # Runs inside the forward pass, before later in-place ops of the model can change `out`.
        batch = now[-1]
        samples = recorder.record(layer, out, batch.mask, batch.labels, positions[-1], source)
        if keep_rows:
            calls.setdefault(layer.name, []).append(input_rows(out, samples, layer, batch.mask))

    num_inputs = 0
    started = False
    nonfinite = recorder.nonfinite
    trim = HeapTrimmer()  # freed forward-pass and block buffers back to the system (engine/heap.py)
    with open_taps(model.module, options.include, options.exclude) as taps:
        for raw in data.iter_batches():
            start = first_index + num_inputs + nonfinite.inputs
            batch = nonfinite.finite_batch(raw, num_inputs + nonfinite.inputs, data.description)
            if batch is None:
                continue
            now[:] = [on_device(batch, device)]
            if recorder.wants_index:
                positions[:] = [input_index(raw, start, device)]
            for entry in calls.values():
                entry.clear()
            taps.stream(now[-1].inputs, sink, affine=True)
            trim()
            if not started:
                for observer in observers:
                    observer.started(meta, recorder.layers)
                started = True
            rows = {meta.name: _rows(calls[meta.name]) for meta in recorder.layers} if keep_rows else {}
            count = batch_size(batch)
            for observer in observers:
                observer.batch(rows, batch.labels, count)
            num_inputs += count
    _report_eigen(recorder.analyses, observers)
    if not recorder.layers:
        if nonfinite.inputs:
            raise DataError(f"every one of the {nonfinite.inputs} inputs of {data.description} holds NaN or inf")
        raise SatcliError(f"the data set {data.description} gave no samples")
    recorder.output_layer = taps.output_layer
    meta = replace(meta, options={**meta.options, "untracked": [u.to_dict() for u in taps.untracked]})
    for analysis in recorder.analyses:
        analysis.finish(model.module)  # data-free steps (weight spectra) once, after the last batch
    widest = max(layer.width for layer in recorder.layers)
    with scoring_threads(widest):  # eigendecompositions: see engine/threads.py
        state = recorder.state(meta, num_inputs)
    # Analyses that evaluate what they fitted (linear probes) see the evaluation data (default: the fit data).
    evaluate = options.eval_data if options.eval_data is not None else data
    state = evaluation_pass(model, evaluate, options, state, recorder.analyses)  # type: ignore[arg-type]
    with scoring_threads(widest):
        result = score_state(state, options.thresholds)
    for observer in observers:
        observer.finished(state, result)
    return result


def _report_eigen(analyses: Sequence[Analysis], observers: Sequence[Observer]) -> None:
    """Let observers that want it (a progress bar) follow the eigen step, which dominates wide layers."""
    hooks = [hook for hook in (getattr(o, "eigen", None) for o in observers) if hook is not None]
    for analysis in analyses:
        if hooks and isinstance(analysis, SaturationAnalysis):
            analysis.on_eigen = lambda done, total: [hook(done, total) for hook in hooks]


def data_offset(data: DataSource) -> int:
    """The global index of the source's first input: a shard (a contiguous Subset) starts where it starts."""
    indices = getattr(getattr(data, "dataset", None), "indices", None)  # sources of Python batches have none
    return indices.start if isinstance(indices, range) else 0


def input_index(raw: Batch, start: int, device: torch.device) -> torch.Tensor:
    """(B,) int64 global index of each input the engine kept from `raw` (inputs holding NaN/inf are left out)."""
    index = torch.arange(start, start + batch_size(raw), dtype=torch.int64)
    keep = finite_rows(raw.inputs)
    return (index if keep is None else index[keep.cpu()]).to(device)


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


def _rows(calls: list[torch.Tensor]) -> torch.Tensor:
    """One row per input; a layer called several times per forward pass keeps the mean of its calls."""
    return calls[0] if len(calls) == 1 else torch.stack(calls).mean(dim=0)
