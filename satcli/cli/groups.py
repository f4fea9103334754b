"""Option groups: the options several commands share, declared once as a dataclass and expanded into each
command's signature by `with_groups`, so `analyze`, `check`, `layers` and `project` cannot drift apart.

A command declares a parameter annotated with a group class (e.g. ``data: DataArgs``); Typer sees the
group's fields as ordinary options, and the command receives one instance of the group.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from satcli.cli.options import (
    AnalysisSpecs,
    Arch,
    ArchKwargs,
    BatchSize,
    Classes,
    ConvMethod,
    ConvMethodOption,
    Data,
    DataRoot,
    Device,
    Download,
    Exclude,
    GrayscaleToRgb,
    ImageSize,
    InputColumn,
    LabelColumn,
    Layers,
    MaxLength,
    MaxSamples,
    MaxTail,
    OnNonfinite,
    OnNonfiniteOption,
    Precision,
    PrecisionOption,
    Seed,
    SequenceMethod,
    SequenceMethodOption,
    Split,
    TailThreshold,
    TextOptions,
    Threshold,
    Tokenizer,
    TrustPickle,
    TrustRemoteCode,
    UnderThreshold,
    WeightSpectra,
    Workers,
    arch_kwargs_dict,
    data_options,
)

if TYPE_CHECKING:
    from satcli.core.verdict import ThresholdOverrides, Thresholds
    from satcli.data import DataOptions
    from satcli.models import LoadedModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class DataArgs:
    """Which data a command runs on and how it is batched."""

    data: Data = "digits"
    data_root: DataRoot = None
    download: Download = False
    split: Split = "test"
    max_samples: MaxSamples = None
    batch_size: BatchSize = 256
    workers: Workers = 0
    image_size: ImageSize = None
    grayscale_to_rgb: GrayscaleToRgb = False
    seed: Seed = 0
    input_column: InputColumn = None
    label_column: LabelColumn = None
    tokenizer: Tokenizer = None
    max_length: MaxLength = None

    def options(self, trust_remote_code: bool = False, **changes: Any) -> DataOptions:
        """The DataOptions these options describe (`changes` overrides fields, e.g. a smaller batch)."""
        text = TextOptions(self.input_column, self.label_column, self.tokenizer, self.max_length, trust_remote_code)
        values = {**dataclasses.asdict(self), **changes}
        return data_options(
            values["data_root"],
            values["download"],
            values["split"],
            values["max_samples"],
            values["batch_size"],
            values["workers"],
            values["image_size"],
            values["seed"],
            grayscale_to_rgb=values["grayscale_to_rgb"],
            text=text,
        )


@dataclass
class ModelFileArgs:
    """How a model file becomes a module: the architecture a state dict needs, and the pickle opt-in."""

    arch: Arch = None
    arch_kwargs: ArchKwargs = None
    trust_pickle: TrustPickle = False

    def load(self, path: Path | str, **options: Any) -> LoadedModel:
        """load_model with these options (`options`: the loader's other keywords, e.g. device)."""
        from satcli.models import load_model

        kwargs = arch_kwargs_dict(self.arch_kwargs)
        return load_model(path, arch=self.arch, arch_kwargs=kwargs, trust_pickle=self.trust_pickle, **options)


@dataclass
class ModelArgs(ModelFileArgs):
    """How a model file becomes a module, and where it runs."""

    trust_remote_code: TrustRemoteCode = False
    device: Device = "auto"

    def loader(self, device: Any = None, download: bool = False) -> Callable[[Path | str], LoadedModel]:
        """load_model with these options (`device`: a resolved device instead of the option's text)."""
        return partial(
            self.load,
            device=self.device if device is None else device,
            trust_remote_code=self.trust_remote_code,
            download=download,
        )


@dataclass
class LayerArgs:
    """Which layers are measured and how their outputs become samples."""

    layers: Layers = None
    exclude: Exclude = None
    conv_method: ConvMethodOption = ConvMethod.mean
    sequence_method: SequenceMethodOption = SequenceMethod.mean
    precision: PrecisionOption = Precision.float64
    on_nonfinite: OnNonfiniteOption = OnNonfinite.skip

    def analysis_options(self, **extra: Any) -> Any:
        """AnalysisOptions with these layers and reductions (`extra`: thresholds, store and analysis switches)."""
        from satcli.engine.options import AnalysisOptions
        from satcli.taps import Reduction

        return AnalysisOptions(
            reduction=Reduction(self.conv_method.value, self.sequence_method.value),
            include=tuple(self.layers or ()),
            exclude=tuple(self.exclude or ()),
            precision=self.precision.value,
            on_nonfinite=self.on_nonfinite.value,
            **extra,
        )


@dataclass
class AnalysisArgs:
    """Which analyses run besides saturation: `--analysis NAME[:opt=value]`, with --classes/--no-classes and
    --weight-spectra as aliases (analyses/registry.py)."""

    analysis: AnalysisSpecs = None
    classes: Classes = None
    weight_spectra: WeightSpectra = False

    def switches(self) -> dict[str, Any]:
        """The AnalysisOptions fields these options set."""
        return {"analyses": tuple(self.analysis or ()), "classes": self.classes, "weight_spectra": self.weight_spectra}


@dataclass
class ThresholdArgs:
    """The verdict's thresholds; an unset one keeps the default, or a store's recorded value when re-scoring."""

    threshold: Threshold = None
    tail_threshold: TailThreshold = None
    max_tail: MaxTail = None
    under_threshold: UnderThreshold = None

    def overrides(self) -> ThresholdOverrides:
        """The thresholds that were given, for Thresholds or a store's recorded ones."""
        from satcli.core.verdict import ThresholdOverrides

        return ThresholdOverrides(self.threshold, self.tail_threshold, self.max_tail, self.under_threshold)

    def thresholds(self) -> Thresholds:
        """The default Thresholds with the given ones applied (a fresh analysis has none recorded)."""
        from satcli.core.verdict import Thresholds

        return self.overrides().apply(Thresholds())


def with_groups(command: F) -> F:
    """Expand every parameter of `command` annotated with a group (a dataclass) into the group's options."""
    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    expanded: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    groups: dict[str, type] = {}
    for param in signature.parameters.values():
        hint = hints.get(param.name, param.annotation)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            groups[param.name] = hint
            fields = typing.get_type_hints(hint, include_extras=True)
            for field in dataclasses.fields(hint):
                expanded.append(
                    inspect.Parameter(
                        field.name, param.KEYWORD_ONLY, default=field.default, annotation=fields[field.name]
                    )
                )
                annotations[field.name] = fields[field.name]
        else:
            expanded.append(param.replace(annotation=hint, kind=param.KEYWORD_ONLY))
            annotations[param.name] = hint
    names = [p.name for p in expanded]
    if len(set(names)) != len(names):
        raise TypeError(f"{command.__name__}: an option of a group clashes with another option")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)})
        return command(**kwargs)

    del wrapper.__wrapped__  # Typer must read the expanded signature, not the command's own
    wrapper.__signature__ = signature.replace(parameters=expanded)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**annotations, "return": hints.get("return")}
    return wrapper  # type: ignore[return-value]
