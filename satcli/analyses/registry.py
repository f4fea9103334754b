"""The analyses a run can add to saturation, by name: a new analysis is a new entry here."""

from __future__ import annotations

from satcli.analyses.base import LayerAnalysis
from satcli.analyses.classes import ClassesAnalysis
from satcli.analyses.neighbours import MLEAnalysis, TwoNNAnalysis

LAYER_ANALYSES: dict[str, type[LayerAnalysis]] = {
    ClassesAnalysis.name: ClassesAnalysis,
    TwoNNAnalysis.name: TwoNNAnalysis,
    MLEAnalysis.name: MLEAnalysis,
}
