"""Spectrum summaries (docs/method.md, "Spectrum summaries"): effective rank, participation ratio and the
spectral decay of each layer's covariance eigenvalues. Derived from the saturation moments, so on by default
and re-scored from any store."""

from __future__ import annotations

from collections.abc import Mapping

from satcli.analyses.base import Column, DerivedAnalysis, number_cell
from satcli.core.spectrum import spectrum_summary
from satcli.core.state import LayerStats


class SpectrumAnalysis(DerivedAnalysis):
    """Adds `effective_rank`, `participation_ratio` and `spectral_decay` to each measured layer."""

    name = "spectrum"
    keys = ("effective_rank", "participation_ratio", "spectral_decay")
    columns = (
        Column("eff.rank", "effective_rank", lambda entry: number_cell(entry.get("effective_rank"), ".1f")),
        Column("PR", "participation_ratio", lambda entry: number_cell(entry.get("participation_ratio"), ".1f")),
        Column("decay", "spectral_decay", lambda entry: number_cell(entry.get("spectral_decay"), ".2f")),
    )
    summary = "effective rank, participation ratio and spectral decay of the eigenvalues (docs/method.md sec. 10)"

    @staticmethod
    def score(stats: LayerStats, element: object, required: Mapping[str, object]) -> Mapping[str, object] | None:
        if stats.nonfinite or stats.samples < 2:
            return None
        return spectrum_summary(stats.eigenvalues)
