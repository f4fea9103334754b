"""Average saturation, the tail and the under/overparameterization verdict (docs/method.md sec. 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from satcli.core.spectral import DEFAULT_DELTA, FLAG_DEAD, FLAG_NONFINITE, FLAG_UNDERSAMPLED, LayerScore
from satcli.errors import SatcliError

BALANCED = "balanced"
OVER = "overparameterized"
UNDER = "underparameterized"
INCONCLUSIVE = "inconclusive"
UNDERSAMPLED_REASON = "undersampled"


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
    # Why no verdict can be given ("undersampled: need at least N inputs", "no signal: ..."); None when it can.
    inconclusive: str | None = None
    # Per undersampled layer, the inputs that would give it more samples than its width.
    inputs_needed: tuple[tuple[str, int], ...] = ()

    @property
    def undersampled(self) -> bool:
        """True when the verdict is inconclusive only because most averaged layers are undersampled."""
        return self.inconclusive is not None and self.inconclusive.startswith(UNDERSAMPLED_REASON)

    @property
    def label(self) -> str:
        """'balanced', 'overparameterized', 'underparameterized', both joined by ' and ', or 'inconclusive (why)'.

        An inconclusive verdict still records which rules fired (the booleans), for a caller that accepts it.
        """
        if self.inconclusive is not None:
            return f"{INCONCLUSIVE} ({self.inconclusive})"
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
            "inconclusive": self.inconclusive,
            "inputs_needed": dict(self.inputs_needed),
        }


def non_output_layers(layers: Sequence[LayerScore], output_layer: str | None = None) -> list[LayerScore]:
    """D: every tracked layer except the output layer (the model's last one executed).

    `output_layer` names the model's last tracked layer when the selection may have left it out (then no
    selected layer is the output layer); None: the last of `layers` is.
    """
    if output_layer is not None and (not layers or layers[-1].name != output_layer):
        return list(layers)
    return list(layers[:-1])


def average_saturation(layers: Sequence[LayerScore], output_layer: str | None = None) -> float | None:
    """Mean saturation over D, leaving out dead and non-finite layers; None when nothing is left."""
    d = non_output_layers(layers, output_layer)
    values = [s.saturation for s in d if s.scored and s.saturation is not None]
    return sum(values) / len(values) if values else None


def tail(layers: Sequence[LayerScore], tail_threshold: float, output_layer: str | None = None) -> tuple[str, ...]:
    """The run of layers at the end of D whose saturation is below tail_threshold, in forward order.

    Dead layers (saturation 0) belong to the tail; non-finite layers have no saturation and are stepped over.
    """
    run: list[str] = []
    for score in reversed(non_output_layers(layers, output_layer)):
        if score.saturation is None:
            continue
        if score.saturation >= tail_threshold:
            break
        run.append(score.name)
    return tuple(reversed(run))


def inputs_needed(layer: LayerScore, num_inputs: int | None) -> int | None:
    """Inputs that would give an undersampled layer more samples than its width (None when it is not)."""
    if FLAG_UNDERSAMPLED not in layer.flags:
        return None
    per_input = layer.samples / num_inputs if num_inputs and layer.samples else 1.0
    return max(math.ceil((layer.width + 1) / per_input), 2)


def inconclusive_reason(
    layers: Sequence[LayerScore], num_inputs: int | None, output_layer: str | None = None
) -> str | None:
    """Why the verdict would rest on artefacts, or None.

    Of the non-output layers that are neither dead nor non-finite, more than half are undersampled: their
    saturation is capped at (n - 1) / d, so a tail or a low average would be the sample count's, not the
    model's. Or no non-output layer has any signal (every one dead or non-finite, e.g. all-zero inputs),
    or there is none (only the output layer is tracked): nothing would enter the average.
    """
    d = non_output_layers(layers, output_layer)
    live = [s for s in d if FLAG_DEAD not in s.flags and FLAG_NONFINITE not in s.flags]
    if not d:
        return "nothing measured: no tracked layer besides the output layer" if layers else "no tracked layer"
    if not live:
        dead = sum(FLAG_DEAD in s.flags for s in d)
        return f"no signal: {dead} of {len(d)} layers dead, {len(d) - dead} non-finite"
    under = [s for s in live if FLAG_UNDERSAMPLED in s.flags]
    if 2 * len(under) <= len(live):
        return None
    need = max(inputs_needed(s, num_inputs) or 0 for s in live)
    return f"{UNDERSAMPLED_REASON}: need at least {need} inputs"


def decide(
    layers: Sequence[LayerScore],
    thresholds: Thresholds | None = None,
    num_inputs: int | None = None,
    output_layer: str | None = None,
) -> Verdict:
    """Apply the rule of docs/method.md sec. 2 to layer scores given in forward order.

    `num_inputs` (inputs the samples came from) turns sample shortfalls into input counts; `output_layer`
    is the model's last tracked layer when the scored layers are a selection (None: the last of them).
    """
    thresholds = thresholds or Thresholds()
    avg = average_saturation(layers, output_layer)
    run = tail(layers, thresholds.tail_threshold, output_layer)
    d = non_output_layers(layers, output_layer)
    needed = ((s.name, inputs_needed(s, num_inputs)) for s in layers)
    return Verdict(
        average=avg,
        tail=run,
        overparameterized=len(run) > thresholds.max_tail,
        underparameterized=avg is not None and avg >= thresholds.under_threshold,
        averaged_layers=tuple(s.name for s in d if s.scored),
        output_layer=output_layer if output_layer is not None else (layers[-1].name if layers else None),
        thresholds=thresholds,
        inconclusive=inconclusive_reason(layers, num_inputs, output_layer),
        inputs_needed=tuple((name, n) for name, n in needed if n is not None),
    )
