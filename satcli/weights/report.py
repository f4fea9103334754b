"""Run the data-free analyses on a loaded module: the SVR of its layer chain and its weight spectra."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.taps import RECURRENT, discover
from satcli.weights.chain import Chain, Link, build_chain, layer_calls
from satcli.weights.esd import LayerSpectrum, spectra
from satcli.weights.matrices import LayerWeight, fold_batchnorm, layer_weights, svr_matrix
from satcli.weights.svr import Modes, PairSvr, pair_svr, tail_probability, top_modes


@dataclass(frozen=True)
class SvrLayer:
    """One layer's spectral neurons: its weight shape, the factored matrix's shape and the folded BatchNorm."""

    name: str
    type: str
    shape: tuple[int, ...]
    matrix_shape: tuple[int, int]
    modes: Modes
    batchnorm: str | None


@dataclass(frozen=True)
class SvrPair:
    """A composing pair's SVR result."""

    src: str
    dst: str
    result: PairSvr


@dataclass(frozen=True)
class SvrReport:
    """The whole SVR of a model."""

    method: str
    sigma: float
    max_modes: int
    fold_bn: bool
    source: str
    layers: list[SvrLayer]
    pairs: list[SvrPair]
    skipped: list[tuple[str | None, str, str]]

    @property
    def p(self) -> float:
        """The null probability of an edge at this sigma."""
        return tail_probability(self.sigma)


def model_chain(
    module: nn.Module | torch.jit.ScriptModule, input_shape: Sequence[int] | None, device: torch.device
) -> tuple[Chain, dict[str, LayerWeight]]:
    """The layer chain of a loaded module and its dense/conv weights."""
    layers = discover(module)  # for a TorchScript module an inlined copy of its graph: once
    weights = layer_weights(module, layers)
    recurrent = [layer.name for layer in layers if layer.kind == RECURRENT]
    calls, source = layer_calls(module, input_shape, device)
    return build_chain(calls, weights, source, recurrent), weights


def svr_report(
    module: nn.Module | torch.jit.ScriptModule,
    *,
    input_shape: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    method: str = "svr",
    sigma: float = 3.0,
    max_modes: int = 128,
    fold_bn: bool = True,
) -> SvrReport:
    """The SVR of every composing pair of a model (docs/method.md sec. 5)."""
    if max_modes < 1:
        raise SatcliError(f"the number of modes must be at least 1, got {max_modes}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise SatcliError(f"sigma must be a positive number, got {sigma}")
    chain, weights = model_chain(module, input_shape, torch.device(device))
    if not chain.links:
        names = "; ".join(f"{f'{s.src} -> ' if s.src else ''}{s.dst}: {s.reason}" for s in chain.skipped[:3])
        raise SatcliError(f"no pair of consecutive layers composes, so there is no SVR{f' ({names})' if names else ''}")
    bns = {link.src: link.bn for link in chain.links if fold_bn and link.bn is not None}
    factored: dict[str, tuple[Modes, int, int]] = {}
    layers = []
    for name in chain.layers:
        w = weights[name]
        folded = fold_batchnorm(w.weight, bns[name]) if name in bns else w.weight
        matrix, z_u, z_v = svr_matrix(folded, method)
        modes = top_modes(matrix, max_modes)
        factored[name] = (modes, z_u, z_v)
        bn_name = bns[name].name if name in bns else None
        layers.append(SvrLayer(name, w.type, tuple(w.weight.shape), matrix.shape, modes, bn_name))
    pairs = [SvrPair(link.src, link.dst, _pair(link, factored, weights, sigma)) for link in chain.links]
    skipped = [(s.src, s.dst, s.reason) for s in chain.skipped]
    return SvrReport(method, sigma, max_modes, fold_bn, chain.source, layers, pairs, skipped)


def _pair(
    link: Link, factored: dict[str, tuple[Modes, int, int]], weights: dict[str, LayerWeight], sigma: float
) -> PairSvr:
    first, z_u, _ = factored[link.src]
    second, _, z_v = factored[link.dst]
    n = weights[link.src].channels_out
    if link.flattened:
        z_v = link.positions  # a dense layer after a flatten of (n, z): v reads as (n, z)
    return pair_svr(first, second, n, z_u, z_v, sigma)


def weights_report(module: nn.Module | torch.jit.ScriptModule) -> list[tuple[LayerSpectrum, np.ndarray]]:
    """Weight spectra of every dense/conv tracked layer, each with its eigenvalues; refuses a model without one."""
    found = spectra(module)
    if not found:
        raise SatcliError("no Linear or Conv layer with a weight matrix in the model")
    return found


def spectra_summary(found: Sequence[LayerSpectrum]) -> dict[str, object]:
    """Counts per reading, layers without a fit, and the mean alpha over fitted layers."""
    alphas = [s.alpha for s in found if s.alpha is not None]
    counts = {r: sum(1 for s in found if s.reading == r) for r in ("well trained", "under-trained", "over-fitted")}
    return {
        "layers": len(found),
        "fitted": len(alphas),
        "not_fitted": len(found) - len(alphas),
        "mean_alpha": float(np.mean(alphas)) if alphas else None,
        **{key.replace(" ", "_").replace("-", "_"): value for key, value in counts.items()},
    }
