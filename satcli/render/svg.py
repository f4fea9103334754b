"""The HTML report's figures as inline SVG text: the same figures `satcli plot` draws, plus weight spectra.

Text stays text in the SVG (svg.fonttype "none", the page's own sans-serif), so a figure needs no font
file and its labels can be searched; raster parts (the heatmap's cells) are embedded as data URIs by matplotlib.
"""

from __future__ import annotations

import importlib
import io
import math
from collections.abc import Sequence
from typing import Any

from satcli.core.results import CheckpointResult
from satcli.render.plot import BAR, TAIL, matplotlib_classes, results_figure


def figure_svg(fig: Any) -> str:
    """A figure as an <svg> element (no XML prolog or doctype, which do not belong inside HTML)."""
    matplotlib = importlib.import_module("matplotlib")
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def saturation_svg(results: Sequence[CheckpointResult], source: str | None = None) -> str:
    """Bars per layer of one checkpoint (with the between-class share when present), or the heatmap of several."""
    return figure_svg(results_figure(results, source))


def _weight_values(result: CheckpointResult, key: str) -> list[float]:
    values = []
    for layer in result.layers:
        value = layer.extras.get("weights", {}).get(key)
        values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return values


def has_weight_spectra(result: CheckpointResult) -> bool:
    """True when `--weight-spectra` (or a store that kept them) gave any layer a weight spectrum."""
    return any("weights" in layer.extras for layer in result.layers)


def weights_svg(result: CheckpointResult) -> str:
    """Power-law alpha and stable rank of each layer's weights (docs/method.md sec. 6), two panels in forward order."""
    figure_class, canvas_class = matplotlib_classes()
    names = [layer.name for layer in result.layers]
    n = len(names)
    fig = figure_class(figsize=(max(6.0, 0.4 * n + 2.5), 4.6), layout="constrained")
    canvas_class(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    alpha = _weight_values(result, "alpha")
    top.plot(range(n), alpha, color=TAIL, marker="o", lw=1.0)
    for level in (2.0, 6.0):
        top.axhline(level, color="#888888", lw=0.8, ls=":")
    top.set_ylabel("alpha")
    top.set_title("weight spectra: power-law alpha (2 and 6 dotted) and stable rank; gaps: no fit", fontsize=9)
    bottom.bar(range(n), [0.0 if math.isnan(v) else v for v in _weight_values(result, "stable_rank")], color=BAR)
    bottom.set_ylabel("stable rank")
    bottom.set_xticks(range(n), names, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center", fontsize=8)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    return figure_svg(fig)
