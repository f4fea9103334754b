"""A whole `engine.run.analyze` run of an in-memory model, with its final CheckpointState kept for the tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointState
from satcli.data import DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.models import LoadedModel


class _KeepState:
    """An observer that keeps the run's final state (every layer's moments and elements)."""

    wants_rows = False

    def __init__(self) -> None:
        self.states: list[CheckpointState] = []

    def started(self, meta, layers) -> None:  # type: ignore[no-untyped-def]
        return None

    def batch(self, rows, labels, count) -> None:  # type: ignore[no-untyped-def]
        return None

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None:
        self.states.append(state)


def run_state(
    module: nn.Module, source: DataSource, options: AnalysisOptions
) -> tuple[CheckpointState, CheckpointResult]:
    """(final state, result) of analyzing `module` (eval mode, CPU) on `source`."""
    loaded = LoadedModel(Path("m.pt"), "0" * 64, "pickle", module.eval(), torch.device("cpu"), None, None)  # type: ignore[arg-type]
    keep = _KeepState()
    result = analyze(loaded, source, options, [keep])
    return keep.states[0], result
