"""The eigenspace projection check (docs/method.md sec. 3): fit every tracked layer's subspace in one pass of the
engine, then evaluate the unmodified model and every projected variant batch by batch.

Passes over the data: 1 fit pass (the engine, channelwise / per-token samples, the same exact accumulator as
`analyze`) and, on the evaluation data, 1 base pass plus one pass per distinct non-identity variant. A
variant whose k equals the width everywhere is the identity and costs no pass; two deltas giving the same k
share one. The base output of each evaluation batch is computed once and every variant is compared with it,
so memory stays at one batch of outputs whatever the data size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from satcli.core.projection import (
    DEFAULT_DELTAS,
    Eigenspace,
    OutputMetrics,
    ProjectedLayer,
    ProjectionReport,
    ProjectionResult,
    Projector,
    check_deltas,
    fit_eigenspace,
)
from satcli.core.state import CheckpointState
from satcli.data import DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import Observer, analyze, batch_size, on_device
from satcli.engine.sweep import ProgressObserver, StateObserver
from satcli.models import LoadedModel
from satcli.taps import CONV, Layer, Reduction
from satcli.taps.intervene import Intervention, Transform, intervene

# The samples a projection acts on: every spatial position of a convolution, every real token of a sequence.
FIT_REDUCTION = Reduction(conv_method="channelwise", sequence_method="tokens")


@dataclass(frozen=True)
class ProjectionOptions:
    """Which layers the check projects and at which deltas."""

    deltas: tuple[float, ...] = DEFAULT_DELTAS
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "deltas", check_deltas(self.deltas))


# Told after every batch: the stage ("fit" or "evaluate") and the inputs in the batch.
Progress = Callable[[str, int], None]

# A variant: the k of every projected layer (layer name -> k), in forward order.
_Variant = tuple[tuple[str, int], ...]


def project(
    model: LoadedModel,
    fit: DataSource,
    evaluate: DataSource | None = None,
    options: ProjectionOptions | None = None,
    progress: Progress | None = None,
) -> ProjectionReport:
    """Fit each tracked layer's top eigenspaces on `fit` and measure the projected models on `evaluate`
    (default: `fit`): each layer alone and all non-output layers at once, for every delta.

    `progress(stage, inputs)` is told after every batch: stage "fit", then "evaluate" (each evaluation batch
    once, after the base model and every variant ran on it)."""
    options = options or ProjectionOptions()
    evaluate = fit if evaluate is None else evaluate
    tell = progress or (lambda stage, count: None)
    state = fit_state(model, fit, options, partial(tell, "fit"))
    spaces = [
        fit_eigenspace(
            x.meta.name,
            x.meta.type,
            x.stats.samples,
            x.stats.mean,
            x.stats.m2,
            x.stats.eigenvalues,
            nonfinite=x.stats.nonfinite,
        )
        for x in state.layers
    ]
    layers = [Layer(x.meta.name, x.meta.type, x.meta.kind, x.meta.width, x.meta.order) for x in state.layers]
    # The model's last tracked layer that ran, whatever the selection (the fit pass records it).
    output = str(state.meta.options.get("output_layer") or layers[-1].name)
    plan = _plan(spaces, options.deltas, output)
    variants = list(dict.fromkeys(v for v in plan.values() if v))
    projectors = {
        (s.name, k): s.projector(k) for s in spaces for k in {k for v in variants for n, k in v if n == s.name}
    }
    base, metrics, num_eval = _evaluate(model, evaluate, layers, variants, projectors, partial(tell, "evaluate"))
    results = _results(plan, spaces, output, base, metrics)
    return ProjectionReport(
        model=str(model.path),
        model_format=model.format,
        fit_data=fit.description,
        eval_data=evaluate.description,
        fit_inputs=state.num_inputs,
        eval_inputs=num_eval,
        deltas=options.deltas,
        layers=tuple(ProjectedLayer(s.name, s.type, s.width, s.samples, s.name == output) for s in spaces),
        base_accuracy=base.accuracy,
        results=results,
        passes=2 + len(variants),
    )


def fit_state(
    model: LoadedModel, fit: DataSource, options: ProjectionOptions, advance: Callable[[int], None] | None = None
) -> CheckpointState:
    """One engine pass over the fit data: exact float64 moments of every tracked layer's projection samples."""
    capture = StateObserver()
    observers: list[Observer] = [capture] + ([] if advance is None else [ProgressObserver(advance)])
    run_options = AnalysisOptions(
        reduction=FIT_REDUCTION,
        include=options.include,
        exclude=options.exclude,
        store_activations=False,
        classes=False,
    )
    analyze(model, fit, run_options, observers)
    assert capture.state is not None
    return capture.state


def _plan(
    spaces: list[Eigenspace], deltas: Sequence[float], output: str
) -> dict[tuple[str, str | None, float], _Variant]:
    """Every reported result and the variant it needs; an empty variant is the identity (no pass)."""
    plan: dict[tuple[str, str | None, float], _Variant] = {}
    for space in spaces:
        for delta in deltas:
            k = space.k(delta)
            plan[("layer", space.name, delta)] = () if k == space.width else ((space.name, k),)
    inner = [s for s in spaces if s.name != output]
    if inner:
        for delta in deltas:
            plan[("all", None, delta)] = tuple((s.name, s.k(delta)) for s in inner if s.k(delta) != s.width)
    return plan


def _results(
    plan: dict[tuple[str, str | None, float], _Variant],
    spaces: list[Eigenspace],
    output: str,
    base: OutputMetrics,
    metrics: dict[_Variant, OutputMetrics],
) -> tuple[ProjectionResult, ...]:
    """One result per planned entry; an identity variant reports the base accuracy and no output change."""
    by_name = {s.name: s for s in spaces}
    results = []
    for (scope, name, delta), variant in plan.items():
        found = metrics[variant] if variant else base
        if name is None:
            k: int | dict[str, int] = {s.name: s.k(delta) for s in spaces if s.name != output}
        else:
            k = by_name[name].k(delta)
        width = None if name is None else by_name[name].width
        results.append(ProjectionResult(scope, name, delta, k, width, found.accuracy, found.change if variant else 0.0))
    return tuple(results)


class _RealTokens:
    """The (B, T) real-token mask of the batch being evaluated, shared by every projection of a run."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None


class _Projection:
    """The intervening transform of one layer: its projector on the channel axis, on real tokens only when the
    batch has a token mask (padding keeps its value, as it was not fitted); and, for TorchScript graphs, the
    same map as float64 mean and matrix."""

    def __init__(self, projector: Projector, tokens: _RealTokens) -> None:
        self.projector = projector
        self.tokens = tokens

    def __call__(self, layer: Layer, z: torch.Tensor) -> torch.Tensor:
        projected = self.projector.apply(z, 1 if layer.kind == CONV else -1)
        mask = self.tokens.mask
        if mask is None or layer.kind == CONV or z.ndim < 3 or tuple(z.shape[:2]) != tuple(mask.shape):
            return projected
        real = mask.to(z.device, torch.bool).reshape(*mask.shape, *([1] * (z.ndim - 2)))
        return torch.where(real, projected, z)

    def affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.projector.affine(device)


def _evaluate(
    model: LoadedModel,
    data: DataSource,
    layers: list[Layer],
    variants: list[_Variant],
    projectors: dict[tuple[str, int], Projector],
    advance: Callable[[int], None],
) -> tuple[OutputMetrics, dict[_Variant, OutputMetrics], int]:
    """Base and variant metrics over the evaluation data, one batch at a time; and the inputs seen."""
    tokens = _RealTokens()
    transforms: dict[_Variant, dict[str, Transform]] = {
        v: {name: _Projection(projectors[(name, k)], tokens) for name, k in v} for v in variants
    }
    base = OutputMetrics()
    metrics = {v: OutputMetrics() for v in variants}
    seen = 0
    with intervene(model.module, layers, model.device) as net:
        for raw in data.iter_batches():
            batch = on_device(raw, model.device)
            tokens.mask = batch.mask
            reference = _eval_rows(net, batch.inputs, None, batch.mask)
            labels = _accuracy_labels(reference, batch.labels, batch_size(batch))
            base.update(reference, reference, labels)
            for variant, replaced in transforms.items():
                metrics[variant].update(_eval_rows(net, batch.inputs, replaced, batch.mask), reference, labels)
            seen += batch_size(batch)
            advance(batch_size(batch))
    return base, metrics, seen


def _eval_rows(
    net: Intervention, inputs: object, replaced: dict[str, Transform] | None, mask: torch.Tensor | None
) -> torch.Tensor:
    """The model's output on a batch, real tokens only for per-token outputs (padding is not counted)."""
    out = net.run(inputs, replaced)  # type: ignore[arg-type]
    if mask is not None and out.ndim >= 3 and tuple(out.shape[:2]) == tuple(mask.shape):
        return out[mask.to(out.device, torch.bool)]
    return out


def _accuracy_labels(out: torch.Tensor, labels: torch.Tensor | None, count: int) -> torch.Tensor | None:
    """The labels when accuracy applies (one row of class scores per input), else None."""
    if labels is None or out.ndim != 2 or out.shape[0] != count:
        return None
    return labels
