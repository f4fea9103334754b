"""The CI gate of `satcli check`: pure rules that pass or fail a scored checkpoint.

Gates (each reported as one line):

- ``max-tail``: the tail is at most N layers long. It is the verdict's overparameterized rule, active with
  ``--fail-on overparameterized|any`` (limit: the verdict's max tail) or whenever ``--max-tail`` is set.
- ``under-threshold``: the average is below the verdict's under-threshold (the underparameterized rule),
  active with ``--fail-on underparameterized|any``.
- ``max-average`` / ``min-average``: bounds on the average saturation.
- ``max-saturation PATTERN=X`` / ``min-saturation PATTERN=X``: bounds on every layer whose name matches the
  glob; a pattern that matches no layer is a usage error (SatcliError), so a typo never passes silently.
- ``min-effective-rank``: every averaged layer's effective rank / width (docs/method.md, "Spectrum
  summaries") is at least the share; the layers of the average are those of the tail rule.
- ``max-dead``: no layer but the output layer has a larger share of dead units (docs/method.md,
  "Activation health").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from satcli.core.spectral import LayerScore
from satcli.core.verdict import OVER, UNDER, Verdict
from satcli.errors import SatcliError

FAIL_ANY = "any"
FAIL_NONE = "none"
FAIL_ON_CHOICES = (OVER, UNDER, FAIL_ANY, FAIL_NONE)
DEFAULT_FAIL_ON = FAIL_ANY
# At most this many offending layers are named in a gate's line; the rest are counted.
MAX_NAMED_LAYERS = 5
LAYER_GATES = ("max-saturation", "min-saturation")


@dataclass(frozen=True)
class GateSpec:
    """Which gates apply and their limits; None (or empty) leaves a gate out."""

    fail_on: str = DEFAULT_FAIL_ON
    max_tail: int | None = None
    max_average: float | None = None
    min_average: float | None = None
    max_saturation: tuple[tuple[str, float], ...] = ()
    min_saturation: tuple[tuple[str, float], ...] = ()
    min_effective_rank: float | None = None
    max_dead: float | None = None

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON_CHOICES:
            raise SatcliError(
                f"the verdict that fails the check must be one of {', '.join(FAIL_ON_CHOICES)}, got {self.fail_on!r}"
            )
        if self.max_tail is not None and self.max_tail < 0:
            raise SatcliError(f"the maximum tail length must be 0 or more, got {self.max_tail}")
        for name in ("max_average", "min_average", "min_effective_rank", "max_dead"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise SatcliError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome; `message` says what was measured against which limit."""

    gate: str
    limit: str
    passed: bool
    message: str
    layers: tuple[str, ...] = field(default=())

    def line(self, checkpoint: str | None = None) -> str:
        """'FAIL CHECKPOINT max-tail: tail of 6 layers (net.5 ... net.15) > 2'; layer gates name their
        PATTERN=X too. The checkpoint tells apart the lines of the checkpoints of one store."""
        subject = f"{self.gate} {self.limit}" if self.gate in LAYER_GATES else self.gate
        if checkpoint:
            subject = f"{checkpoint} {subject}"
        return f"{'PASS' if self.passed else 'FAIL'} {subject}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "gate": self.gate,
            "limit": self.limit,
            "passed": self.passed,
            "message": self.message,
            "layers": list(self.layers),
        }


def percent(x: float | None) -> str:
    """A measured fraction as a percentage with one decimal, or 'n/a'."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:.1f}%"


def limit_percent(x: float) -> str:
    """A limit as a percentage without float noise: 0.45 -> '45%', 0.125 -> '12.5%'."""
    return f"{x * 100:.10g}%"


def layer_span(names: Sequence[str]) -> str:
    """'a, b, c' for up to three names, else 'first ... last'."""
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]}"


def _layers(n: int) -> str:
    return f"{n} layer" if n == 1 else f"{n} layers"


def parse_layer_limit(text: str, option: str) -> tuple[str, float]:
    """'PATTERN=X' -> (PATTERN, X) with X in [0, 1]; raises SatcliError naming the option otherwise."""
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern.strip():
        raise SatcliError(f"{option} takes PATTERN=X (e.g. 'head.*=0.9'), got {text!r}")
    try:
        limit = float(value)
    except ValueError:
        raise SatcliError(f"{option} {text!r}: {value!r} is not a number") from None
    if not 0.0 <= limit <= 1.0:
        raise SatcliError(f"{option} {text!r}: the limit must be in [0, 1]")
    return pattern.strip(), limit


def _tail_gate(verdict: Verdict, limit: int) -> GateResult:
    tail = verdict.tail
    measured = f"tail of {_layers(len(tail))}" + (f" ({layer_span(tail)})" if tail else "")
    passed = len(tail) <= limit
    message = f"{measured} {'<=' if passed else '>'} {limit}"
    if not passed and verdict.overparameterized:
        message += f" -> {OVER}"
    return GateResult("max-tail", str(limit), passed, message, tail)


def _under_gate(verdict: Verdict) -> GateResult:
    limit = verdict.thresholds.under_threshold
    average = percent(verdict.average)
    if verdict.underparameterized:
        message = f"average saturation {average} >= {limit_percent(limit)} -> {UNDER}"
    else:
        message = f"average saturation {average} < {limit_percent(limit)}"
    return GateResult("under-threshold", str(limit), not verdict.underparameterized, message)


def _average_gate(verdict: Verdict, limit: float, upper: bool) -> GateResult:
    gate = "max-average" if upper else "min-average"
    average = verdict.average
    if average is None:
        return GateResult(gate, str(limit), False, "no average saturation (no scored layer outside the output layer)")
    passed = average <= limit if upper else average >= limit
    op = ("<=" if passed else ">") if upper else (">=" if passed else "<")
    return GateResult(gate, str(limit), passed, f"average saturation {percent(average)} {op} {limit_percent(limit)}")


def _layer_gate(layers: Sequence[LayerScore], pattern: str, limit: float, upper: bool) -> GateResult:
    gate = "max-saturation" if upper else "min-saturation"
    spec = f"{pattern}={limit:g}"
    matched = [layer for layer in layers if fnmatchcase(layer.name, pattern)]
    if not matched:
        names = ", ".join(layer.name for layer in layers) or "none"
        raise SatcliError(f"--{gate} pattern {pattern!r} matches no layer (layers: {names})")

    def bad(layer: LayerScore) -> bool:
        s = layer.saturation
        return s is None or (s > limit if upper else s < limit)

    if all(layer.saturation is None for layer in matched):
        names = ", ".join(f"{layer.name} ({', '.join(layer.flags) or 'no k'})" for layer in matched)
        raise SatcliError(f"--{gate} pattern {pattern!r} matches only unmeasured layers, nothing to check: {names}")
    offenders = [layer for layer in matched if bad(layer)]
    side = "above" if upper else "below"
    if not offenders:
        message = f"all {_layers(len(matched))} {'at most' if upper else 'at least'} {limit_percent(limit)}"
        return GateResult(gate, spec, True, message)
    named = ", ".join(f"{layer.name} {percent(layer.saturation)}" for layer in offenders[:MAX_NAMED_LAYERS])
    more = len(offenders) - MAX_NAMED_LAYERS
    if more > 0:
        named += f" and {more} more"
    message = f"{len(offenders)} of {_layers(len(matched))} {side} {limit_percent(limit)}: {named}"
    return GateResult(gate, spec, False, message, tuple(layer.name for layer in offenders))


def _share_gate(
    layers: Sequence[LayerScore], gate: str, limit: float, what: str, share: Callable[[LayerScore], float | None]
) -> GateResult:
    """A per-layer share (`share`: None = not measured, left out) against a lower or upper `limit`."""
    upper = gate.startswith("max")
    measured = [(layer, value) for layer in layers if (value := share(layer)) is not None]
    if not measured:
        return GateResult(gate, str(limit), False, f"no layer has a {what} to check")
    offenders = [(layer, value) for layer, value in measured if (value > limit if upper else value < limit)]
    if not offenders:
        bound = "at most" if upper else "at least"
        return GateResult(
            gate, str(limit), True, f"{what} of all {_layers(len(measured))} {bound} {limit_percent(limit)}"
        )
    named = ", ".join(f"{layer.name} {percent(value)}" for layer, value in offenders[:MAX_NAMED_LAYERS])
    if len(offenders) > MAX_NAMED_LAYERS:
        named += f" and {len(offenders) - MAX_NAMED_LAYERS} more"
    side = "above" if upper else "below"
    message = f"{what} of {len(offenders)} of {_layers(len(measured))} {side} {limit_percent(limit)}: {named}"
    return GateResult(gate, str(limit), False, message, tuple(layer.name for layer, _ in offenders))


def _rank_share(layer: LayerScore) -> float | None:
    rank = layer.extras.get("effective_rank")
    return rank / layer.width if isinstance(rank, float) and layer.width else None


def _dead_share(layer: LayerScore) -> float | None:
    health = layer.extras.get("health")
    dead = health.get("dead") if isinstance(health, Mapping) else None
    return dead if isinstance(dead, float) else None


def evaluate(layers: Sequence[LayerScore], verdict: Verdict, spec: GateSpec) -> tuple[GateResult, ...]:
    """Every active gate's result for one checkpoint, in a fixed order (verdict rules, averages, layers)."""
    results: list[GateResult] = []
    if spec.max_tail is not None or spec.fail_on in (OVER, FAIL_ANY):
        limit = spec.max_tail if spec.max_tail is not None else verdict.thresholds.max_tail
        results.append(_tail_gate(verdict, limit))
    if spec.fail_on in (UNDER, FAIL_ANY):
        results.append(_under_gate(verdict))
    if spec.max_average is not None:
        results.append(_average_gate(verdict, spec.max_average, upper=True))
    if spec.min_average is not None:
        results.append(_average_gate(verdict, spec.min_average, upper=False))
    for pattern, limit in spec.max_saturation:
        results.append(_layer_gate(layers, pattern, limit, upper=True))
    for pattern, limit in spec.min_saturation:
        results.append(_layer_gate(layers, pattern, limit, upper=False))
    if spec.min_effective_rank is not None:
        averaged = [layer for layer in layers if layer.name in set(verdict.averaged_layers)]
        results.append(
            _share_gate(averaged, "min-effective-rank", spec.min_effective_rank, "effective rank / width", _rank_share)
        )
    if spec.max_dead is not None:
        inner = [layer for layer in layers if layer.name != verdict.output_layer]
        results.append(_share_gate(inner, "max-dead", spec.max_dead, "dead units", _dead_share))
    return tuple(results)


def passed(results: Sequence[GateResult]) -> bool:
    """True when no gate failed (also when no gate was active)."""
    return all(result.passed for result in results)


def summary(label: str, results: Sequence[GateResult], verdict: Verdict) -> str:
    """The one-line PASS/FAIL summary of a checkpoint."""
    failed = sum(not result.passed for result in results)
    about = f"verdict {verdict.label}, average {percent(verdict.average)}"
    if failed:
        return f"FAIL {label}: {failed} of {len(results)} gate{'' if len(results) == 1 else 's'} failed ({about})"
    count = f"{len(results)} gate passed" if len(results) == 1 else f"{len(results)} gates passed"
    return f"PASS {label}: {count} ({about})"
