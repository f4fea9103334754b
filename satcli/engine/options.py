"""Everything that shapes the numbers of one analysis run, besides the model and the data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from satcli.analyses.registry import ANALYSES, options_record, parse_spec, resolve
from satcli.core.accumulator import PRECISIONS
from satcli.core.verdict import Thresholds
from satcli.engine.nonfinite import POLICIES
from satcli.errors import SatcliError
from satcli.taps import Reduction

ACTIVATION_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class AnalysisOptions:
    """How a run reduces outputs, which layers it tracks, how it scores and what it keeps.

    `analyses`: analyses asked for besides those that run by default, as `NAME[:opt=value,...]` text or
    (name, options) pairs (analyses/registry.py). `classes` and `weight_spectra` are aliases: classes
    None = on when the data carry labels, False = off; weight_spectra = the `weights` analysis. `precision`:
    of the per-block covariance arithmetic (sums are float64 either way; docs/method.md sec. 1 gives float32's error).
    `eval_data`: what analyses with an evaluation pass (the linear probes) evaluate on.
    `store_activations`: keep pooled per-input activations in the store (opt-in: for a transformer they
    outweigh everything else the store keeps). `keep_moments`: keep each layer's d x d m2 in the store, which
    merging and projecting need and re-scoring does not (a shard's partial store keeps it anyway).
    """

    reduction: Reduction = field(default_factory=Reduction)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    store_activations: bool = False
    activations_dtype: str = "float32"
    keep_moments: bool = False
    classes: bool | None = None
    weight_spectra: bool = False
    precision: str = "float64"
    on_nonfinite: str = "skip"
    analyses: tuple[str | tuple[str, object], ...] = ()
    # The labelled data of the evaluation pass of analyses that have one (a DataSource; None: the fit data).
    eval_data: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        specs = tuple(parse_spec(spec) if isinstance(spec, str) else spec for spec in self.analyses)
        object.__setattr__(self, "analyses", specs)
        for name, options in specs:
            if name == "saturation":  # --analysis saturation:precision=... is --precision
                object.__setattr__(self, "precision", options.precision)  # type: ignore[attr-defined]
        if self.precision not in PRECISIONS:
            raise SatcliError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.on_nonfinite not in POLICIES:
            raise SatcliError(f"the non-finite policy must be one of {', '.join(POLICIES)}, got {self.on_nonfinite!r}")
        if self.activations_dtype not in ACTIVATION_DTYPES:
            raise SatcliError(
                f"activations dtype must be one of {', '.join(ACTIVATION_DTYPES)}, got {self.activations_dtype!r}"
            )

    def chosen(self, has_labels: bool) -> list[tuple[str, object]]:
        """(name, options) of every analysis the run builds, saturation first (registry order)."""
        specs = [spec for spec in self.analyses if isinstance(spec, tuple) and spec[0] != "saturation"]
        asked = [options for name, options in self.analyses if name == "saturation"]  # type: ignore[misc]
        saturation = parse_spec("saturation")[1] if not asked else asked[-1]
        specs.insert(0, ("saturation", replace(saturation, precision=self.precision)))  # type: ignore[type-var]
        if self.classes and has_labels:
            specs.append(parse_spec("classes"))
        if self.weight_spectra and all(name != "weights" for name, _ in specs):
            specs.append(parse_spec("weights"))
        chosen = resolve(specs, has_labels, off=("classes",) if self.classes is False else ())
        if any(ANALYSES[name].output_moments for name, _ in chosen):  # e.g. probes: see Analysis.output_moments
            chosen = [(name, replace(o, affine_inputs=False) if name == "saturation" else o) for name, o in chosen]  # type: ignore[type-var]
        return chosen

    def column_bytes(self, has_labels: bool) -> int:
        """Bytes per layer and column of width that the chosen analyses hold besides the moments (reservoirs)."""
        return sum(ANALYSES[name].column_bytes(options) for name, options in self.chosen(has_labels))

    def extra_analyses(self, has_labels: bool) -> tuple[str, ...]:
        """Names of the layer analyses to run besides saturation."""
        return tuple(name for name, _ in self.chosen(has_labels) if name != "saturation")

    def describe(self, has_labels: bool = False) -> dict[str, object]:
        """The options as recorded in the store and in json output."""
        return {
            "conv_method": self.reduction.conv_method,
            "sequence_method": self.reduction.sequence_method,
            "layers": list(self.include),
            "exclude": list(self.exclude),
            "store_activations": self.store_activations,
            "activations_dtype": self.activations_dtype,
            "analyses": ["saturation", *self.extra_analyses(has_labels)],
            # Recorded only when an analysis runs with options other than its defaults.
            **({"analysis_options": record} if (record := options_record(self.chosen(has_labels))) else {}),
            "on_nonfinite": self.on_nonfinite,
            # Recorded only when not the default, so stores and JSON of float64 runs stay as they were.
            **({"precision": self.precision} if self.precision != "float64" else {}),
            **({"keep_moments": True} if self.keep_moments else {}),
        }


def recorded_options(record: dict[str, Any]) -> AnalysisOptions:
    """The reduction, layer selection and non-finite policy a stored run recorded (the keys `describe` writes),
    so that a later pass over the same model (an evaluation of a stored fit) sees the same samples."""
    layers, exclude = record.get("layers") or (), record.get("exclude") or ()
    return AnalysisOptions(
        reduction=Reduction(str(record.get("conv_method", "mean")), str(record.get("sequence_method", "mean"))),
        include=tuple(str(name) for name in layers),
        exclude=tuple(str(name) for name in exclude),
        on_nonfinite=str(record.get("on_nonfinite", "skip")),
    )
