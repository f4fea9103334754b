"""Reading a training trajectory (Shenk et al. 2019, "Spectral Analysis of Latent Representations", Sec. 3.5
and its early-stopping remark): pure rules over the scored checkpoints of one run, in training order.

- early underparameterized: the average saturation is at or above the verdict's under_threshold in each
  of the first `early_checkpoints` checkpoints (the paper: underparameterized networks "start off with
  much higher saturation levels, making it possible to detect them early during training").
- saturation settled at step S: S is the earliest checkpoint after which, between every two consecutive
  checkpoints up to the last, every averaged layer's saturation moved by less than `tolerance`, and there
  are at least `window` such moves. An observation about the representation, not a stopping rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from satcli.errors import SatcliError

if TYPE_CHECKING:
    from satcli.core.results import CheckpointResult


@dataclass(frozen=True)
class TrajectoryRule:
    """The rule's parameters, printed with the summary."""

    tolerance: float = 0.02
    window: int = 3
    early_checkpoints: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance <= 1.0:
            raise SatcliError(f"the settling tolerance must be in (0, 1], got {self.tolerance}")
        if self.window < 1 or self.early_checkpoints < 1:
            raise SatcliError("the settling window and the early checkpoint count must be at least 1")


@dataclass(frozen=True)
class TrajectorySummary:
    """What the rule found over one run's checkpoints."""

    steps: tuple[int, ...]
    averages: tuple[float | None, ...]
    under_threshold: float
    early_underparameterized: bool
    early_checked: int
    settled_step: int | None
    largest_moves: tuple[float, ...]
    rule: TrajectoryRule

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {**asdict(self), "rule": asdict(self.rule)}


def checkpoint_steps(results: Sequence[CheckpointResult]) -> tuple[int, ...]:
    """Each checkpoint's recorded training step (a Monitor's `step`), else its position from 0."""
    recorded = [r.options.get("step") for r in results]
    if all(isinstance(s, int) and not isinstance(s, bool) for s in recorded):
        return tuple(int(s) for s in recorded)  # type: ignore[arg-type]
    return tuple(range(len(results)))


def largest_move(before: CheckpointResult, after: CheckpointResult) -> float:
    """The largest change of saturation of any layer counted in both averages between two checkpoints."""
    old = {layer.name: layer.saturation for layer in before.layers}
    counted = set(before.verdict.averaged_layers) & set(after.verdict.averaged_layers)
    moves = [
        abs(layer.saturation - old[layer.name])  # type: ignore[operator]
        for layer in after.layers
        if layer.name in counted and layer.saturation is not None and old.get(layer.name) is not None
    ]
    return max(moves, default=0.0)


def summarize(results: Sequence[CheckpointResult], rule: TrajectoryRule | None = None) -> TrajectorySummary:
    """The trajectory summary of checkpoints in training order (at least two)."""
    rule = rule or TrajectoryRule()
    if len(results) < 2:
        raise SatcliError("a trajectory summary needs at least two checkpoints")
    averages = tuple(r.verdict.average for r in results)
    under = float(results[0].verdict.thresholds.under_threshold)
    early = min(rule.early_checkpoints, len(results))
    early_flag = all(a is not None and a >= under for a in averages[:early])
    moves = tuple(largest_move(a, b) for a, b in itertools.pairwise(results))
    settled = None
    for start in range(len(moves) - rule.window + 1):
        if all(move < rule.tolerance for move in moves[start:]):
            settled = start
            break
    steps = checkpoint_steps(results)
    return TrajectorySummary(
        steps=steps,
        averages=averages,
        under_threshold=under,
        early_underparameterized=early_flag,
        early_checked=early,
        settled_step=None if settled is None else steps[settled],
        largest_moves=moves,
        rule=rule,
    )
