"""Every analysis by name, and how `NAME:opt=value,...` text becomes a built analysis.

A new analysis is a class (analyses/base.py) plus one entry in `_CLASSES`: the CLI's `--analysis`, the
API's `analyses=`, the store's encoding of its state, the table's columns and `satcli analyses` all read
it from here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence

import torch

from satcli.analyses.base import LABELLED, ON, Analysis, Column
from satcli.analyses.classes import ClassesAnalysis
from satcli.analyses.health import HealthAnalysis
from satcli.analyses.neighbours import MLEAnalysis, TwoNNAnalysis
from satcli.analyses.probe import ProbeAnalysis
from satcli.analyses.saturation import SaturationAnalysis
from satcli.analyses.spectrum import SpectrumAnalysis
from satcli.analyses.weights import WeightsAnalysis
from satcli.errors import SatcliError

# The one list of analyses, in the order they run and appear in JSON.
_CLASSES: tuple[type[Analysis], ...] = (
    SaturationAnalysis,
    ClassesAnalysis,
    SpectrumAnalysis,
    HealthAnalysis,
    WeightsAnalysis,
    TwoNNAnalysis,
    MLEAnalysis,
    ProbeAnalysis,
)

ANALYSES: dict[str, type[Analysis]] = {cls.name: cls for cls in _CLASSES}
# Every analysis that adds its own keys to a layer's entry (all but saturation, whose numbers are the base).
LAYER_ANALYSES: dict[str, type[Analysis]] = {name: cls for name, cls in ANALYSES.items() if name != "saturation"}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def analysis_class(name: str) -> type[Analysis]:
    """The analysis registered as `name`; a usage error naming the known ones otherwise."""
    cls = ANALYSES.get(name)
    if cls is None:
        raise SatcliError(f"unknown analysis {name!r}; known: {', '.join(ANALYSES)} (see satcli analyses)")
    return cls


def parse_spec(text: str) -> tuple[str, object]:
    """'NAME' or 'NAME:opt=value,opt2=value' -> (name, its validated Options); values typed by the fields."""
    name, _, rest = text.strip().partition(":")
    cls = analysis_class(name.strip())
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SatcliError(f"--analysis {text!r}: options are opt=value, got {item!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    return cls.name, make_options(cls, values, text)


def make_options(cls: type[Analysis], values: Mapping[str, object], what: str) -> object:
    """`cls.Options` from option values (text is converted by the field's type), validated once."""
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    hints = typing.get_type_hints(cls.Options)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        have = ", ".join(fields) or "none"
        raise SatcliError(f"analysis {cls.name!r} ({what}) has no option {', '.join(unknown)} (options: {have})")
    typed = {key: _typed(hints[key], value, f"{cls.name}:{key}") for key, value in values.items()}
    try:
        return cls.Options(**typed)
    except (TypeError, ValueError) as exc:
        raise SatcliError(f"analysis {cls.name!r} ({what}): {exc}") from None


def _typed(hint: object, value: object, what: str) -> object:
    """`value` as the field type `hint` (bool, int, float or str); text is parsed, other values checked."""
    kind = next((t for t in (bool, int, float, str) if hint is t or t in typing.get_args(hint)), str)
    if not isinstance(value, str):
        if isinstance(value, kind) or (kind is float and isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise SatcliError(f"{what} must be a {kind.__name__}, got {value!r}")
    try:
        if kind is bool:
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError
            return value.lower() in _TRUE
        return kind(value)
    except ValueError:
        raise SatcliError(f"{what} must be a {kind.__name__}, got {value!r}") from None


def resolve(specs: Iterable[tuple[str, object]], has_labels: bool, off: Sequence[str] = ()) -> list[tuple[str, object]]:
    """(name, options) of every analysis a run builds, in registry order: saturation, those that run by default
    (labelled ones only with labels), the asked-for ones (their options win) and what those require; `off`
    leaves default ones out. An asked-for analysis that needs labels on data without them is refused."""
    chosen: dict[str, object] = {}
    for cls in _CLASSES:
        if cls.name not in off and (cls.runs == ON or (cls.runs == LABELLED and has_labels)):
            chosen[cls.name] = cls.Options()
    for name, options in specs:
        chosen[name] = options
    pending = list(chosen)
    while pending:
        name = pending.pop()
        for required in ANALYSES[name].requires:
            if required in off:
                raise SatcliError(f"analysis {name!r} requires {required!r}, which is switched off")
            if required not in chosen:
                chosen[required] = ANALYSES[required].Options()
                pending.append(required)
    for name in chosen:
        if ANALYSES[name].runs == LABELLED and not has_labels:
            raise SatcliError(f"analysis {name!r} needs labelled data; the data carry no labels")
    return [(cls.name, chosen[cls.name]) for cls in _CLASSES if cls.name in chosen]


def build(chosen: Iterable[tuple[str, object]], device: torch.device | str | None) -> list[Analysis]:
    """The analyses `resolve` chose, constructed on `device`."""
    return [ANALYSES[name](options, device) for name, options in chosen]


def options_record(chosen: Iterable[tuple[str, object]]) -> dict[str, dict[str, object]]:
    """Each analysis' options that differ from their defaults (what a store and JSON record)."""
    record = {}
    for name, options in chosen:
        changed = {
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)  # type: ignore[arg-type]
            if getattr(options, f.name) != getattr(ANALYSES[name].Options(), f.name)
        }
        if name == "saturation":
            changed.pop("precision", None)  # recorded on its own (AnalysisOptions.describe)
        if changed:
            record[name] = changed
    return record


def state_versions() -> dict[str, int]:
    """The newest state version this satcli reads, per analysis with a stored state of its own."""
    return {name: cls.state_version for name, cls in LAYER_ANALYSES.items() if not cls.derived}


def table_columns() -> list[tuple[str, Column]]:
    """(analysis, column) of every analysis' declared table columns, in registry order."""
    return [(cls.name, column) for cls in _CLASSES for column in cls.columns]


def describe() -> list[dict[str, object]]:
    """Every analysis with its summary, when it runs, what it requires and its options' defaults."""
    out = []
    for cls in _CLASSES:
        defaults = cls.Options()
        out.append(
            {
                "name": cls.name,
                "runs": cls.runs,
                "requires": list(cls.requires),
                "options": {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)},  # type: ignore[arg-type]
                "keys": list(cls.keys),
                "columns": [column.header for column in cls.columns],
                "summary": cls.summary,
            }
        )
    return out
