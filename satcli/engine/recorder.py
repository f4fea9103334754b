"""The one recording step of every run: a tracked layer's output into the analyses' samples.

`analyze` (engine/run.py, and through it the fit pass of `project`) and the training Monitor both hand each
tracked output to `Recorder.record`, so the same output gives the same samples, labels, non-finite filtering
(engine/nonfinite.py), layer metadata and final state whoever ran the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from satcli.analyses.base import Analysis
from satcli.analyses.saturation import SaturationAnalysis
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta, LayerState
from satcli.engine.nonfinite import NonFiniteCount, flag_unmeasured
from satcli.engine.options import AnalysisOptions
from satcli.errors import SatcliError
from satcli.taps import CONV, Layer, sample_view
from satcli.taps.layers import AffineInput, Inputs
from satcli.taps.reduce import position_blocks, sample_labels


class Recorder:
    """Feeds every tracked output of a run to the analyses and builds the run's CheckpointState at the end.

    `output_layer` is the model's last tracked layer in forward order, whatever the selection; the taps
    learn it and the caller sets it here, so the verdict leaves that layer (and only it) out of the average.
    """

    def __init__(self, options: AnalysisOptions, analyses: Sequence[Analysis]) -> None:
        self.options = options
        self.analyses = list(analyses)
        self.nonfinite = NonFiniteCount(options.on_nonfinite)
        self.output_layer: str | None = None
        self._metas: dict[str, LayerMeta] = {}
        self._keep: torch.Tensor | None = None  # inputs of the current forward pass to measure (None: all)
        # Analyses that choose samples by the input's global index (reservoirs) get each sample's index.
        self.wants_index = any(analysis.wants_index for analysis in self.analyses)
        self._units = [analysis for analysis in self.analyses if analysis.positions]  # analyses of units (health)
        # Analyses that measure an affine layer through its input when the taps hand it (AffineInput).
        self._affine = any(analysis.wants_affine for analysis in self.analyses)

    @property
    def layers(self) -> list[LayerMeta]:
        """The recorded layers' metadata, in forward order (first call)."""
        return list(self._metas.values())

    def begin(self, inputs: Inputs) -> int:
        """Start a forward pass the recorder did not filter beforehand (a training step): its inputs that hold
        a NaN or inf are counted as skipped and left out of every layer's samples; returns the inputs measured."""
        first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
        self._keep = self.nonfinite.finite_inputs(inputs)
        return int(first.shape[0]) if self._keep is None else int(self._keep.sum())

    def record(
        self,
        layer: Layer,
        out: torch.Tensor,
        mask: torch.Tensor | None,
        labels: torch.Tensor | None,
        index: torch.Tensor | None = None,
        source: AffineInput | None = None,
    ) -> torch.Tensor:
        """Hand one tracked output (and the batch's (B, T) real-token mask, per-input labels and per-input global
        indices) to every analysis; `source`, an affine layer's input, goes as samples of the same inputs and
        positions to the analyses that take it (wants_affine).

        Returns the output's samples as sample_view gives them (before non-finite filtering), for callers that
        keep per-input rows. Runs inside the forward pass, before later in-place ops of the model change `out`.
        """
        source = source if self._affine else None
        if self._keep is not None:
            if source is not None:
                source = replace(source, x=_inputs_kept(source.x, layer, mask, None, self._keep)[0])
            out, mask, labels = _inputs_kept(out, layer, mask, labels, self._keep)
            index = None if index is None else index[self._keep.to(index.device)]
        samples = sample_view(out, layer, self.options.reduction, mask)
        if samples.numel() == 0:  # every input of the pass held a NaN or inf
            return samples
        if layer.name not in self._metas:
            self._metas[layer.name] = self._meta(layer, out, samples)
        per_sample = sample_labels(labels, samples, int(out.shape[0]), mask)
        if self.wants_index and index is None:
            raise SatcliError("an analysis that keeps a reservoir needs each input's index; this run gives none")
        sample_index = sample_labels(index, samples, int(out.shape[0]), mask) if self.wants_index else None
        measured, per_sample, sample_index = self.nonfinite.finite_samples(
            layer.name, samples, per_sample, sample_index
        )
        through = None if source is None else self._affine_samples(layer, source, samples, measured, mask)
        for analysis in self.analyses:
            if analysis.positions:
                continue
            if analysis.wants_affine and through is not None:
                analysis.update(layer, measured, per_sample, source=through)  # type: ignore[call-arg]
            elif analysis.wants_index:
                analysis.update(layer, measured, per_sample, sample_index)
            else:
                analysis.update(layer, measured, per_sample)
        if self._units:  # every position / real token
            # A NaN/inf at any position reaches a pooled mean, so finite samples vouch for every position.
            vouched = measured is samples and _propagates(self.options.reduction.name_for(layer, out.ndim))
            for block in position_blocks(out, layer, mask):
                block = block if vouched else _finite_positions(block)
                for analysis in self._units:
                    analysis.update(layer, block, None)
        return samples

    def _affine_samples(
        self,
        layer: Layer,
        source: AffineInput,
        samples: torch.Tensor,
        measured: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> AffineInput | None:
        """The affine layer's input reduced like its output, row for row with `measured`, or None when it does
        not match. Every dense reduction (none, mean, last, tokens) averages or selects positions with weights
        summing to one, so it commutes with x -> x W + b (docs/method.md sec. 1)."""
        x = sample_view(source.x, layer, self.options.reduction, mask)
        if x.shape[:-1] != samples.shape[:-1] or x.shape[-1] != source.weight.shape[0]:
            return None
        if measured is not samples:  # outputs left out as non-finite: the same rows of the input
            keep = torch.isfinite(samples.reshape(-1, samples.shape[-1])).all(dim=1)
            x = x.reshape(-1, x.shape[-1])[keep]
        return replace(source, x=x)

    def _meta(self, layer: Layer, out: torch.Tensor, samples: torch.Tensor) -> LayerMeta:
        return LayerMeta(
            name=layer.name,
            type=layer.type,
            kind=layer.kind,
            width=int(layer.width or 0),
            order=len(self._metas),
            reduction=self.options.reduction.name_for(layer, out.ndim),
            activations_reduction="none" if per_input(samples, out) else "mean",
        )

    def add_layer(self, meta: LayerMeta) -> None:
        """Know a layer recorded elsewhere (a merged state), after the ones already known."""
        if meta.name not in self._metas:
            self._metas[meta.name] = LayerMeta(**{**meta.__dict__, "order": len(self._metas)})

    def state(self, meta: CheckpointMeta, num_inputs: int) -> CheckpointState:
        """The run's final state: every layer's moments and the other analyses' elements, in forward order.

        The options record what the run learnt: inputs and samples left out as non-finite, and the output layer.
        """
        states = {analysis.name: analysis.state() for analysis in self.analyses if not analysis.derived}
        stats = flag_unmeasured(states.pop(SaturationAnalysis.name), self.nonfinite)  # type: ignore[arg-type]
        layers = []
        for layer_meta in self._metas.values():
            if layer_meta.name not in stats:
                continue
            extras = {name: state[layer_meta.name] for name, state in states.items() if layer_meta.name in state}
            layers.append(LayerState(layer_meta, stats[layer_meta.name], extras))  # type: ignore[arg-type]
        learnt = {"nonfinite": self.nonfinite.to_dict(), "output_layer": self.output_layer}
        options = {**meta.options, **learnt, "num_inputs": num_inputs}
        return CheckpointState(
            CheckpointMeta(
                meta.model_path, meta.model_sha256, meta.model_format, meta.data_spec, options, meta.thresholds
            ),
            tuple(layers),
            num_inputs,
        )

    def reset(self) -> None:
        """Forget every recorded sample, layer and non-finite count (the output layer stays: it is the model's)."""
        for analysis in self.analyses:
            analysis.reset()
        self._metas.clear()
        self.nonfinite = NonFiniteCount(self.nonfinite.policy)
        self._keep = None


def _propagates(reduction: str) -> bool:
    """True when every position's value enters the reduction's samples, a NaN/inf included (not max or last)."""
    return reduction in ("none", "mean", "channelwise", "tokens")


def _finite_positions(samples: torch.Tensor) -> torch.Tensor:
    """The samples (B, ..., d) as they are when all finite (a view, no copy), else as (N, d) rows without those
    holding NaN/inf (already counted on the run's own samples)."""
    if bool(torch.isfinite(samples.sum())):
        return samples
    rows = samples.reshape(-1, samples.shape[-1])
    return rows[torch.isfinite(rows).all(dim=1)]


def per_input(samples: torch.Tensor, out: torch.Tensor) -> bool:
    """True when each input gives exactly one sample (so stored rows are the samples themselves)."""
    return samples.shape[0] == out.shape[0] and samples[:1].numel() == samples.shape[-1]


def _inputs_kept(
    out: torch.Tensor, layer: Layer, mask: torch.Tensor | None, labels: torch.Tensor | None, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The output, mask and labels of the kept inputs only (the batch axis is 1 for time-major recurrent outputs)."""
    keep = keep.to(out.device)
    axis = 1 if layer.kind != CONV and not layer.batch_first and out.ndim >= 3 else 0
    if out.shape[axis] != keep.shape[0]:
        return out, mask, labels  # not one row per input: nothing to drop by input
    kept = out[keep] if axis == 0 else out[:, keep]
    return (
        kept,
        None if mask is None or mask.shape[0] != keep.shape[0] else mask[keep.to(mask.device)],
        None if labels is None else labels[keep.to(labels.device)],
    )
