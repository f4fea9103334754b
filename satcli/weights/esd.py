"""Weight spectra (docs/method.md sec. 6): norms, stable rank and the power-law fit of each layer's ESD.

The empirical spectral density (ESD) of a layer is the set of eigenvalues of ``W^T W`` (squared singular
values) in float64; for a convolution it pools the eigenvalues of every kernel position's ``out x in``
slice, as WeightWatcher 0.7 does (``matrices.esd_matrices``). The power law ``p(l) ~ l^-alpha`` is fitted by
maximum likelihood above ``xmin``, with ``xmin`` chosen among the eigenvalues to minimise the
Kolmogorov-Smirnov distance (Clauset, Shalizi & Newman 2009), over the eigenvalues above 1e-5, exactly as
WeightWatcher 0.7's own fitter does; the tests check it against the ``powerlaw`` package and WeightWatcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from satcli.weights.matrices import esd_matrices, layer_weights

EVALS_THRESHOLD = 1e-5
MIN_FIT_EVALS = 20  # WeightWatcher 0.7 switches to a different small-sample estimator below this
WELL_TRAINED = (2.0, 6.0)


@dataclass(frozen=True)
class PowerLawFit:
    """``alpha`` with its ``xmin``, KS distance ``D`` and the number of eigenvalues in the tail (>= xmin)."""

    alpha: float
    xmin: float
    ks_distance: float
    num_tail: int


@dataclass(frozen=True)
class LayerSpectrum:
    """One layer's weight-spectrum metrics; ``reason`` says why there is no fit (then alpha etc. are None)."""

    name: str
    type: str
    shape: tuple[int, ...]
    num_evals: int
    spectral_norm: float
    frobenius_norm: float
    stable_rank: float
    alpha: float | None
    xmin: float | None
    ks_distance: float | None
    num_tail: int | None
    reading: str | None
    reason: str | None


def eigenvalues(weight: np.ndarray) -> np.ndarray:
    """The ESD: squared singular values of W (or of each conv slice, pooled), ascending, float64."""
    parts = [np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False) ** 2 for m in esd_matrices(weight)]
    return np.sort(np.concatenate(parts))


def fit_power_law(evals: np.ndarray) -> PowerLawFit:
    """MLE ``alpha = 1 + n / sum ln(l_i / xmin)`` over the tail, ``xmin`` minimising the KS distance.

    Candidates for ``xmin`` are every eigenvalue but the largest; the KS distance compares the fitted
    CDF ``1 - (l / xmin)^(1 - alpha)`` with the empirical one at each tail eigenvalue (WeightWatcher's form).
    """
    data = np.sort(np.asarray(evals, dtype=np.float64))
    data = data[data > EVALS_THRESHOLD]
    if data.size < 2:
        raise ValueError("a power-law fit needs at least two positive eigenvalues")
    logs = np.log(data)
    size = data.size
    tail_sums = np.cumsum(logs[::-1])[::-1]  # sum of logs from i to the end
    best = (np.inf, 0, np.nan)
    for i in range(size - 1):
        n = size - i
        spread = tail_sums[i] - n * logs[i]
        if spread <= 0:
            continue
        alpha = 1.0 + n / spread
        theory = 1.0 - (data[i:] / data[i]) ** (1.0 - alpha)
        dist = float(np.max(np.abs(theory - np.arange(n) / n)))
        if dist < best[0]:
            best = (dist, i, alpha)
    dist, i, alpha = best
    if not np.isfinite(dist):
        raise ValueError("all eigenvalues are equal; no power law to fit")
    return PowerLawFit(float(alpha), float(data[i]), dist, int(size - i))


def reading(alpha: float) -> str:
    """WeightWatcher's reading of alpha: well trained in [2, 6], under-trained above, over-fitted below."""
    low, high = WELL_TRAINED
    if alpha < low:
        return "over-fitted"
    if alpha > high:
        return "under-trained"
    return "well trained"


def layer_spectrum(name: str, type_: str, weight: np.ndarray, evals: np.ndarray | None = None) -> LayerSpectrum:
    """All metrics of one layer's weight (dense or conv, see the module docstring); `evals`: its
    ``eigenvalues`` when already computed."""
    evals = eigenvalues(weight) if evals is None else evals
    return spectrum_of(name, type_, tuple(int(d) for d in weight.shape), evals)


def spectrum_of(name: str, type_: str, shape: tuple[int, ...], evals: np.ndarray) -> LayerSpectrum:
    """All metrics of one layer from its ESD (ascending, as ``eigenvalues`` gives it) and its weight's shape."""
    evals = np.sort(np.asarray(evals, dtype=np.float64))
    top, total = float(evals[-1]) if evals.size else 0.0, float(evals.sum())
    fit: PowerLawFit | None = None
    positive = int(np.count_nonzero(evals > EVALS_THRESHOLD))
    reason = None
    if positive < MIN_FIT_EVALS:
        reason = f"{positive} eigenvalues above {EVALS_THRESHOLD:g}; a power-law fit needs at least {MIN_FIT_EVALS}"
    else:
        try:
            fit = fit_power_law(evals)
        except ValueError as exc:
            reason = str(exc)
    return LayerSpectrum(
        name=name,
        type=type_,
        shape=shape,
        num_evals=int(evals.size),
        spectral_norm=float(np.sqrt(top)),
        frobenius_norm=float(np.sqrt(total)),
        stable_rank=total / top if top > 0 else 0.0,
        alpha=None if fit is None else fit.alpha,
        xmin=None if fit is None else fit.xmin,
        ks_distance=None if fit is None else fit.ks_distance,
        num_tail=None if fit is None else fit.num_tail,
        reading=None if fit is None else reading(fit.alpha),
        reason=reason,
    )


def spectra(module: nn.Module | torch.jit.ScriptModule) -> list[tuple[LayerSpectrum, np.ndarray]]:
    """LayerSpectrum of every dense/conv tracked layer in discovery order, each with its eigenvalues (a plot
    of the spectra needs them)."""
    found = []
    for name, layer in layer_weights(module).items():
        evals = eigenvalues(layer.weight)
        found.append((layer_spectrum(name, layer.type, layer.weight, evals), evals))
    return found


def spectrum_entry(shape: tuple[int, ...], evals: np.ndarray) -> dict[str, object]:
    """A layer's JSON entry under `weights` from its stored ESD and weight shape (the name and type are the layer's)."""
    spectrum = asdict(spectrum_of("", "", shape, evals))
    del spectrum["name"], spectrum["type"]
    spectrum["shape"] = list(shape)
    return spectrum


def layer_weight_spectra(module: nn.Module | torch.jit.ScriptModule, layer_names: Sequence[str]) -> dict[str, dict]:
    """Weight-spectrum metrics per requested layer name, for ``analyze --weight-spectra``.

    Every name gets a dict: the ``LayerSpectrum`` fields (alpha, stable_rank, spectral_norm, ...), where
    ``alpha`` is None and ``reason`` says why when there is no fit; a layer without a weight matrix
    (recurrent, or unknown) gets only ``{"reason": ...}``.
    """
    weights = layer_weights(module)
    result: dict[str, dict] = {}
    for name in layer_names:
        if name not in weights:
            result[name] = {"reason": "no single weight matrix (recurrent or not a Linear/Conv layer)"}
            continue
        spectrum = asdict(layer_spectrum(name, weights[name].type, weights[name].weight))
        spectrum["shape"] = list(spectrum["shape"])
        result[name] = spectrum
    return result
