"""Figures of the data-free analyses (matplotlib, optional): the SVR graph and each layer's ESD with its fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from satcli.errors import SatcliError
from satcli.render.plot import matplotlib_classes, save_figure
from satcli.weights.esd import EVALS_THRESHOLD, LayerSpectrum
from satcli.weights.report import SvrReport


def _figure(width: float, height: float) -> Any:
    figure_class, canvas_class = matplotlib_classes()
    fig = figure_class(figsize=(width, height))
    canvas_class(fig)
    return fig


def plot_svr(report: SvrReport, output: Path) -> Path:
    """Layers on x, singular values on y, significant edges drawn darker the stronger they are (the figure of
    Meller & Berkouk 2023, "Singular Value Representation")."""
    fig = _figure(max(6.0, 1.3 * len(report.layers)), 4.5)
    ax = fig.add_subplot()
    index = {layer.name: i for i, layer in enumerate(report.layers)}
    values = {layer.name: layer.modes.s for layer in report.layers}
    for pair in report.pairs:
        edges = pair.result.edges()
        top = max((v for _, _, v in edges), default=1.0)
        x = (index[pair.src], index[pair.dst])
        for to_mode, from_mode, value in reversed(edges):
            y = (values[pair.src][from_mode], values[pair.dst][to_mode])
            shade = 0.75 - 0.65 * (value - pair.result.threshold) / max(top - pair.result.threshold, 1e-12)
            ax.plot(x, y, color=str(round(float(shade), 3)), linewidth=0.8, zorder=1)
    for layer in report.layers:
        color = "tab:red" if len(layer.shape) > 2 else "tab:blue"
        ax.scatter([index[layer.name]] * len(layer.modes.s), layer.modes.s, s=10, color=color, zorder=2)
    ax.set_xticks(range(len(report.layers)), [layer.name for layer in report.layers], rotation=30, ha="right")
    ax.set_ylabel("singular value")
    ax.set_title(f"SVR ({report.method}): significant edges at {report.sigma:g} sigma; red conv, blue dense")
    fig.tight_layout()
    return save_figure(fig, output)


def plot_esd(found: Sequence[tuple[LayerSpectrum, np.ndarray]], output: Path) -> Path:
    """One log-log panel per layer: the ESD's density and, where fitted, the power law over its tail."""
    if not found:
        raise SatcliError("nothing to plot: no layer")
    cols = min(3, len(found))
    rows = math.ceil(len(found) / cols)
    fig = _figure(4.0 * cols, 3.2 * rows)
    for k, (spectrum, evals) in enumerate(found):
        ax = fig.add_subplot(rows, cols, k + 1)
        data = evals[evals > EVALS_THRESHOLD]
        if data.size:
            low, high = float(data.min()), float(data.max())
            bins = np.geomspace(low, high * 1.0001, num=max(5, min(40, data.size // 2))) if high > low else 5
            ax.hist(data, bins=bins, density=True, color="tab:blue", alpha=0.6)
            ax.set_xscale("log")
            ax.set_yscale("log")
        if spectrum.alpha is not None and spectrum.xmin is not None and spectrum.num_tail:
            x = np.geomspace(spectrum.xmin, float(data.max()), 50)
            share = spectrum.num_tail / data.size
            pdf = share * (spectrum.alpha - 1) / spectrum.xmin * (x / spectrum.xmin) ** (-spectrum.alpha)
            ax.plot(x, pdf, color="tab:red", label=f"alpha {spectrum.alpha:.2f}")
            ax.axvline(spectrum.xmin, color="tab:red", linestyle=":", linewidth=0.8)
            ax.legend(fontsize=8)
            ax.set_title(f"{spectrum.name} ({spectrum.reading})", fontsize=9)
        else:
            ax.set_title(f"{spectrum.name} (no fit)", fontsize=9)
        ax.set_xlabel("eigenvalue of W^T W", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, output)
