"""The analyses a run can add to saturation, by name: a new analysis is a new entry here."""

from __future__ import annotations

from satcli.analyses.base import LayerAnalysis
from satcli.analyses.classes import ClassesAnalysis

LAYER_ANALYSES: dict[str, type[LayerAnalysis]] = {ClassesAnalysis.name: ClassesAnalysis}
