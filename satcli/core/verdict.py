"""Average saturation, the tail and the under/overparameterization verdict (METHOD.md sec. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from satcli.core.spectral import DEFAULT_DELTA, LayerScore
from satcli.errors import SatcliError

BALANCED = "balanced"
OVER = "overparameterized"
UNDER = "underparameterized"


@dataclass(frozen=True)
class Thresholds:
    """Every number the verdict depends on; printed with it so the reader knows which rule fired."""

    delta: float = DEFAULT_DELTA
    tail_threshold: float = 0.2
    max_tail: int = 2
    under_threshold: float = 0.45

    def __post_init__(self) -> None:
        if not 0.0 < self.delta <= 1.0:
            raise SatcliError(f"the variance threshold delta must be in (0, 1], got {self.delta}")

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class ThresholdOverrides:
    """Thresholds given on the command line or in pyproject.toml; None keeps the checkpoint's stored value."""

    delta: float | None = None
    tail_threshold: float | None = None
    max_tail: int | None = None
    under_threshold: float | None = None

    def apply(self, base: Thresholds) -> Thresholds:
        """`base` with every value that is set here replaced."""
        given = {name: value for name, value in self.__dict__.items() if value is not None}
        return replace(base, **given)


@dataclass(frozen=True)
class Verdict:
    """The outcome of the rule for one checkpoint."""

    average: float | None
    tail: tuple[str, ...]
    overparameterized: bool
    underparameterized: bool
    averaged_layers: tuple[str, ...]
    output_layer: str | None
    thresholds: Thresholds

    @property
    def label(self) -> str:
        """'balanced', 'overparameterized', 'underparameterized' or both joined by ' and '."""
        names = [n for n, on in ((UNDER, self.underparameterized), (OVER, self.overparameterized)) if on]
        return " and ".join(names) if names else BALANCED

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "verdict": self.label,
            "average_saturation": self.average,
            "tail": list(self.tail),
            "tail_length": len(self.tail),
            "overparameterized": self.overparameterized,
            "underparameterized": self.underparameterized,
            "averaged_layers": list(self.averaged_layers),
            "output_layer": self.output_layer,
            "thresholds": self.thresholds.to_dict(),
        }


def non_output_layers(layers: Sequence[LayerScore]) -> list[LayerScore]:
    """D: every tracked layer except the output layer (the last one executed)."""
    return list(layers[:-1])


def average_saturation(layers: Sequence[LayerScore]) -> float | None:
    """Mean saturation over D, leaving out dead and non-finite layers; None when nothing is left."""
    values = [s.saturation for s in non_output_layers(layers) if s.scored and s.saturation is not None]
    return sum(values) / len(values) if values else None


def tail(layers: Sequence[LayerScore], tail_threshold: float) -> tuple[str, ...]:
    """The run of layers at the end of D whose saturation is below tail_threshold, in forward order.

    Dead layers (saturation 0) belong to the tail; non-finite layers have no saturation and are stepped over.
    """
    run: list[str] = []
    for score in reversed(non_output_layers(layers)):
        if score.saturation is None:
            continue
        if score.saturation >= tail_threshold:
            break
        run.append(score.name)
    return tuple(reversed(run))


def decide(layers: Sequence[LayerScore], thresholds: Thresholds | None = None) -> Verdict:
    """Apply the METHOD.md rule to layer scores given in forward order."""
    thresholds = thresholds or Thresholds()
    avg = average_saturation(layers)
    run = tail(layers, thresholds.tail_threshold)
    return Verdict(
        average=avg,
        tail=run,
        overparameterized=len(run) > thresholds.max_tail,
        underparameterized=avg is not None and avg >= thresholds.under_threshold,
        averaged_layers=tuple(s.name for s in non_output_layers(layers) if s.scored),
        output_layer=layers[-1].name if layers else None,
        thresholds=thresholds,
    )
