"""The resolution sweep's plain records: one checkpoint's result at an input size beside the layers past the
receptive-field border there (docs/method.md sec. 14). The engine fills them; render formats them."""

from __future__ import annotations

from dataclasses import dataclass

from satcli.core.results import CheckpointResult
from satcli.rf.report import RfReport, Size, per_axis


@dataclass(frozen=True)
class SizeResult:
    """The checkpoint scored at one input size, and the layers past the receptive-field border there."""

    size: Size
    result: CheckpointResult
    border: tuple[str, ...] | None


@dataclass(frozen=True)
class Borders:
    """The receptive-field report of a model, or why there is none (None: not a spatial model, nothing to say)."""

    report: RfReport | None
    problem: str | None = None

    def at(self, size: Size) -> tuple[str, ...] | None:
        if self.report is None:
            return None
        full = per_axis(size, len(self.report.sizes[0]))
        return tuple(self.report.border_layers(full)) if full in self.report.sizes else None
