"""Saturation (docs/method.md sec. 1): exact streaming mean and covariance per layer, scored into k and s = k / d."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from satcli.analyses.base import ON, Analysis
from satcli.core.accumulator import PRECISIONS, CovarianceAccumulator
from satcli.core.affine import AffineMap, affine_moments
from satcli.core.moments import Moments
from satcli.core.spectral import gram_eigenvalues
from satcli.core.state import LayerStats
from satcli.errors import SatcliError
from satcli.taps.layers import AffineInput, Layer


@dataclass(frozen=True)
class SaturationOptions:
    """`precision`: of the per-block covariance arithmetic (sums are float64 either way). `affine_inputs`:
    measure an affine layer wider than its input (nn.Linear, Conv1D) through its input, exactly
    (core/affine.py, docs/method.md sec. 1), where the run hands it; false sums the output's own products."""

    precision: str = "float64"
    affine_inputs: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise SatcliError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class SaturationAnalysis(Analysis):
    """Keeps a float64 covariance accumulator per layer; its state elements are LayerStats.

    Every other analysis and the verdict read these moments, so it always runs; its state is the layer
    group's own datasets in a store (encoding ``layer-stats``), not a subgroup.
    """

    name = "saturation"
    Options = SaturationOptions
    runs = ON
    wants_affine = True
    summary = "k and saturation s = k / d from the streamed float64 covariance (docs/method.md sec. 1); always on"

    def __init__(self, options: SaturationOptions | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(options, device)
        self.precision = self.options.precision
        self.accumulators: dict[str, CovarianceAccumulator] = {}
        # Layers measured through their input (their accumulator sums x, not y = x W + b): their W and b.
        self.affine: dict[str, AffineMap] = {}
        # Told (layers done, layers in all) as each layer's eigenvalues are computed: the slow step of wide runs.
        self.on_eigen: Callable[[int, int], None] | None = None
        # A wide layer's samples while it has at most half as many as its width (at most d x d / 2 values),
        # in their own dtype (float64 later, exactly): its eigenvalues then come from the small n x n Gram.
        self.few: dict[str, list[torch.Tensor] | None] = {}
        # Set by `finish`: the state then takes the accumulators' sums as M2 (once; `_final` keeps that state).
        self._finishing = False
        self._final: dict[str, object] | None = None

    def update(
        self,
        layer: Layer,
        samples: torch.Tensor,
        labels: torch.Tensor | None,
        index: torch.Tensor | None = None,
        source: AffineInput | None = None,
    ) -> None:
        acc = self.accumulators.get(layer.name)
        width = int(layer.width or samples.shape[-1])
        if acc is None:
            summed = width
            if source is not None and self._through(source, width):
                self.affine[layer.name] = (source.weight, source.bias)  # not x: it would keep its batch alive
                summed = int(source.x.shape[-1])
            acc = self.accumulators[layer.name] = CovarianceAccumulator(summed, self.device, self.precision)
            self.few[layer.name] = []
        elif layer.name in self.affine and source is None:  # a batch without the input: the output from now on
            acc = self._direct(layer.name)
        acc.update(source.x if source is not None and layer.name in self.affine else samples)
        kept = self.few.get(layer.name)
        if kept is not None:
            # Counted here, not read from the accumulator (reading it would flush its grouped small batches);
            # a batch the accumulator left out as non-finite makes the counts differ, and layer_stats then
            # takes the covariance route.
            rows = samples.detach().reshape(-1, samples.shape[-1])
            if 2 * (sum(r.shape[0] for r in kept) + rows.shape[0]) > width:
                self.few[layer.name] = None
            elif rows.shape[0]:
                kept.append(rows.to(self.device, copy=True))  # a copy: the model may reuse its output

    def _through(self, source: AffineInput, width: int) -> bool:
        """Measure this layer through its input: asked for, float64 (float32's proven bound is for summed
        products, core/precision.py) and a narrower input, whose sums cost (d_in / d_out)^2 of the output's."""
        return self.options.affine_inputs and self.precision == "float64" and int(source.x.shape[-1]) < width

    def _direct(self, name: str) -> CovarianceAccumulator:
        """Turn a layer measured through its input into one that sums its output from now on (same moments)."""
        inputs = self.accumulators[name]
        moments, _ = affine_moments(inputs.moments, *self.affine.pop(name), eigenvalues=False)
        direct = CovarianceAccumulator(int(moments.m2.shape[0]), self.device, self.precision)
        direct.merge_moments(moments, nonfinite=inputs.nonfinite)
        self.accumulators[name] = direct
        return direct

    def layer_moments(self, name: str) -> Moments:
        """A layer's moments so far (its output's, whichever way it is measured), without consuming them."""
        moments = self.accumulators[name].moments
        affine = self.affine.get(name)
        return moments if affine is None else affine_moments(moments, *affine, eigenvalues=False)[0]

    def state(self) -> dict[str, object]:
        """Each layer's LayerStats, one layer at a time. After `finish` (the run's last batch) the accumulators
        hand over their sums as M2 in place (take_moments), so the state holds one d x d matrix per layer;
        before it (a Monitor's state mid-training) each layer's M2 is a copy and accumulating goes on."""
        if self._final is not None:
            return dict(self._final)
        out: dict[str, object] = {}
        for done, (name, acc) in enumerate(self.accumulators.items(), start=1):
            out[name] = layer_stats(acc, self.few.get(name), take=self._finishing, affine=self.affine.get(name))
            if self._finishing:
                self.few[name] = None  # its rows are no longer needed
            if self.on_eigen is not None:
                self.on_eigen(done, len(self.accumulators))
        if self._finishing:
            self._final = out
        return out

    def finish(self, module: torch.nn.Module) -> None:
        """The run saw its last batch: the next `state` may consume the accumulators (see state)."""
        self._finishing = True

    def merge(self, other: Mapping[str, object]) -> None:
        for name, element in other.items():
            assert isinstance(element, LayerStats)
            if name in self.affine:
                self._direct(name)
            acc = self.accumulators.get(name)
            if acc is None:
                acc = self.accumulators[name] = CovarianceAccumulator(
                    int(element.mean.shape[0]), self.device, self.precision
                )
            # A part's float32 bound adds in M2 units (docs/method.md sec. 1); a part without one counts as exact.
            acc.merge_moments(_moments(element, self.device), nonfinite=element.nonfinite, rounding=element.rounding)

    def reset(self) -> None:
        self.accumulators.clear()
        self.affine.clear()
        self.few.clear()
        self._finishing = False
        self._final = None


def layer_stats(
    acc: CovarianceAccumulator,
    few: list[torch.Tensor] | None = None,
    take: bool = False,
    affine: AffineMap | None = None,
) -> LayerStats:
    """A layer's moments as float64 numpy (m2 a view of the tensor, no copy on the CPU), with the covariance's
    eigenvalues. With `take` the accumulator's own sums become m2 (take_moments) and it is spent. With
    `affine` the accumulator holds the layer's input and the output's moments and eigenvalues come from it
    (core/affine.py).

    With `few` (every sample, at most half as many as the width) the eigenvalues come from the n x n Gram
    matrix of the centered samples, which has the covariance's non-zero eigenvalues: n^3 work instead of
    d^3. Closer to the width that saves little and building the Gram (n^2 d) costs more than it saves.
    """
    moments = acc.take_moments() if take else acc.moments
    rows = torch.cat(few).to(torch.float64) if few else None
    through: torch.Tensor | None = None
    if affine is not None:
        if rows is not None and rows.shape[0] == moments.n and rows.shape[0] < moments.m2.shape[0]:
            # Fewer samples than input columns: the kept outputs' own sums (n d_out^2 / 2 multiply-adds) cost
            # less than the map (d_in d_out^2 / 2), and their eigenvalues come from the n x n Gram below.
            moments = _row_moments(rows, acc.device)
        else:
            moments, through = affine_moments(moments, *affine)
    n = moments.n
    width = int(moments.m2.shape[0])
    if rows is not None and rows.shape[0] == n and n > 1 and 2 * n <= width:
        eigs = gram_eigenvalues(rows.cpu().numpy(), width)
    elif through is not None:
        eigs = (through / (n - 1)).cpu().numpy() if n >= 2 else np.zeros(width)
    else:
        eigs = device_eigenvalues(moments.m2, n)
    bound = None if affine is not None else acc.rounding_bound(moments)
    return LayerStats(
        samples=n,
        mean=moments.mean.cpu().numpy(),
        m2=moments.m2.cpu().numpy(),
        eigenvalues=eigs,
        nonfinite=acc.nonfinite,
        rounding=None if bound is None else bound.eps,
    )


def _row_moments(rows: torch.Tensor, device: torch.device) -> Moments:
    """The moments of a few kept (n, d) output rows, summed exactly as a run sums them (CovarianceAccumulator)."""
    acc = CovarianceAccumulator(int(rows.shape[1]), device)
    acc.update(rows.to(device))
    return acc.take_moments()


def device_eigenvalues(m2: torch.Tensor, n: int) -> np.ndarray:
    """Eigenvalues of the covariance M2 / (n - 1) where M2 lives (torch.linalg.eigvalsh: LAPACK on the CPU,
    cuSOLVER on CUDA; one code path), descending, negatives (rounding) clipped to 0 like `eigenvalues`; all
    zeros below two samples. M2's eigenvalues are scaled, not M2: eigvalsh's own copy is the only d x d one.
    Eigenvalues only: no eigenvectors are formed (projection computes its own, engine/project.py)."""
    if m2.numel() == 0:
        return np.zeros(0)
    if n < 2:
        return np.zeros(m2.shape[0])
    return (torch.linalg.eigvalsh(m2).flip(0).clamp_min(0.0) / (n - 1)).cpu().numpy()


def _moments(stats: LayerStats, device: torch.device) -> Moments:
    return Moments(
        int(stats.samples),
        torch.as_tensor(np.asarray(stats.mean), dtype=torch.float64, device=device),
        torch.as_tensor(np.asarray(stats.m2), dtype=torch.float64, device=device),
    )
