"""The analysis pipeline: stream batches through the taps into accumulators, score, decide, store.

Reads top to bottom: tap the model, feed every batch, then turn each layer's moments into
eigenvalues, k and saturation, and the whole into a verdict. It prints nothing; progress is a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from satcli.accumulators import CovarianceAccumulator
from satcli.data import DataSource
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.results import CheckpointResult
from satcli.spectral import eigenvalues, score_layer
from satcli.store import CheckpointMeta, CheckpointWriter, LayerMeta, LayerStats, StoreWriter
from satcli.taps import Layer, Reduction, input_rows, open_taps, sample_view
from satcli.verdict import Thresholds, decide

ACTIVATION_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class AnalysisOptions:
    """Everything that shapes the numbers of one analysis, besides the model and the data."""

    reduction: Reduction = field(default_factory=Reduction)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    store_activations: bool = True
    activations_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.activations_dtype not in ACTIVATION_DTYPES:
            raise SatcliError(
                f"--activations-dtype must be one of {', '.join(ACTIVATION_DTYPES)}, got {self.activations_dtype!r}"
            )

    def describe(self) -> dict[str, object]:
        """The options as recorded in the store and in json output."""
        return {
            "conv_method": self.reduction.conv_method,
            "sequence_method": self.reduction.sequence_method,
            "layers": list(self.include),
            "exclude": list(self.exclude),
            "store_activations": self.store_activations,
            "activations_dtype": self.activations_dtype,
        }


@dataclass
class _LayerState:
    layer: Layer
    accumulator: CovarianceAccumulator
    reduction: str
    per_input: bool


def analyze(
    model: LoadedModel,
    data: DataSource,
    options: AnalysisOptions,
    store: StoreWriter | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> CheckpointResult:
    """Score one loaded model on one data source; optionally stream its activations into a store."""
    device = model.device
    states: dict[str, _LayerState] = {}
    writer: CheckpointWriter | None = None
    record = dict(options.describe(), data=data.description, device=str(device), num_inputs=0)
    num_inputs = 0
    keep_rows = store is not None and options.store_activations
    pooled: dict[str, list[torch.Tensor]] = {}

    def sink(layer: Layer, out: torch.Tensor) -> None:
        # Runs inside the forward pass, before later in-place ops of the model can change `out`.
        state = states.get(layer.name)
        samples = sample_view(out, layer, options.reduction)
        if state is None:
            state = states[layer.name] = _new_state(layer, out, samples, options.reduction, device)
        state.accumulator.update(samples)
        if keep_rows:
            pooled.setdefault(layer.name, []).append(input_rows(out, samples, layer))

    with open_taps(model.module, options.include, options.exclude) as taps:
        for x, y in data.batches():
            batch = int(x.shape[0])
            pooled.clear()
            taps.stream(x.to(device, non_blocking=True), sink)
            if writer is None and store is not None:
                writer = store.begin_checkpoint(
                    _meta(model, data, options, record),
                    [_layer_meta(s) for s in states.values()],
                    store_activations=options.store_activations,
                    activations_dtype=options.activations_dtype,
                )
            if writer is not None and keep_rows:
                writer.append(
                    {name: _rows(calls, options.activations_dtype) for name, calls in pooled.items()},
                    y.numpy() if data.has_labels else None,
                )
            num_inputs += batch
            if on_batch is not None:
                on_batch(batch)
    if not states:
        raise SatcliError(f"the data set {data.description} gave no samples")
    record["num_inputs"] = num_inputs
    stats = {name: _stats(s.accumulator) for name, s in states.items()}
    scores = tuple(
        score_layer(
            name,
            s.layer.type,
            stats[name].samples,
            stats[name].mean,
            stats[name].eigenvalues,
            options.thresholds.delta,
            nonfinite=stats[name].nonfinite,
            reduction=s.reduction,
        )
        for name, s in states.items()
    )
    if writer is not None:
        writer.finish(stats, scores, num_inputs=num_inputs)
    return CheckpointResult(
        model=str(model.path),
        sha256=model.sha256,
        model_format=model.format,
        data=data.spec,
        layers=scores,
        verdict=decide(scores, options.thresholds),
        options=record,
        store=None,
    )


def _new_state(
    layer: Layer, out: torch.Tensor, samples: torch.Tensor, reduction: Reduction, device: torch.device
) -> _LayerState:
    """A layer's accumulator, sized from its first output (states are created in forward order)."""
    return _LayerState(
        layer=layer,
        accumulator=CovarianceAccumulator(int(layer.width or 0), device),
        reduction=reduction.name_for(layer, out.ndim),
        per_input=samples.ndim == 2 or samples[:1].numel() == samples.shape[-1],
    )


def _layer_meta(state: _LayerState) -> LayerMeta:
    layer = state.layer
    return LayerMeta(
        name=layer.name,
        type=layer.type,
        kind=layer.kind,
        width=int(layer.width or 0),
        order=int(layer.order or 0),
        reduction=state.reduction,
        activations_reduction="none" if state.per_input else "mean",
    )


def _meta(model: LoadedModel, data: DataSource, options: AnalysisOptions, record: dict[str, object]) -> CheckpointMeta:
    return CheckpointMeta(
        model_path=str(model.path),
        model_sha256=model.sha256,
        model_format=model.format,
        data_spec=data.spec,
        options=record,
        thresholds=options.thresholds.to_dict(),
    )


def _rows(calls: list[torch.Tensor], dtype: str) -> np.ndarray:
    """One row per input; a layer called several times per forward pass stores the mean of its calls."""
    rows = calls[0] if len(calls) == 1 else torch.stack(calls).mean(dim=0)
    return rows.to(device="cpu", dtype=getattr(torch, dtype)).numpy()


def _stats(acc: CovarianceAccumulator) -> LayerStats:
    n, mean, cov = acc.compute()
    return LayerStats(
        samples=n,
        mean=mean.cpu().numpy(),
        m2=acc.moments.m2.cpu().numpy(),
        eigenvalues=eigenvalues(cov.cpu().numpy()),
        nonfinite=acc.nonfinite,
    )
