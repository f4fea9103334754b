"""The resolution sweep: one checkpoint scored with its inputs resized to each size, beside the layers that the
receptive field puts past the border at that size (docs/method.md, "Receptive field and input resolution")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from satcli.data import DataSource
from satcli.data.resize import resized
from satcli.engine.options import AnalysisOptions
from satcli.engine.sweep import score_checkpoint
from satcli.errors import SatcliError
from satcli.models import LoadedModel
from satcli.rf.borders import Borders, SizeResult
from satcli.rf.report import NotSpatial, Size, per_axis, rf_report


def borders(loaded: LoadedModel, sizes: Sequence[Size]) -> Borders:
    """Receptive fields at ``sizes``; a model without windows has none, and a failure is kept as a note.

    The trace takes its channels from the model (its first convolution), not the data: --grayscale-to-rgb
    changes them only on the way into the model."""
    try:
        return Borders(rf_report(loaded.module, sizes))
    except NotSpatial:
        return Borders(None)
    except SatcliError as exc:
        return Borders(None, f"receptive field not computed: {exc}")


def resolution_sweep(
    path: Path,
    source: DataSource,
    sizes: Sequence[Size],
    options: AnalysisOptions,
    load: Callable[[Path], LoadedModel],
    on_size: Callable[[Size], Callable[[int], None] | None] | None = None,
) -> tuple[list[SizeResult], Borders]:
    """Score ``path`` at every size (the model loaded once, the data decoded once); no store is written."""
    full = [per_axis(size, 2) for size in sizes]
    loaded = load(path)
    found = borders(loaded, full)
    source.materialize()
    results = []
    for size in full:
        progress = on_size(size) if on_size is not None else None
        result = score_checkpoint(loaded, resized(source, size), options, None, on_batch=progress)
        results.append(SizeResult(size, result, found.at(size)))
    return results, found


class BorderNotes:
    """Wraps a checkpoint loader to keep, per checkpoint, which layers are past the border at the data's size.

    Cheap: one data-free trace per checkpoint, only for (C, H, W) image data."""

    def __init__(self, load: Callable[[Path], LoadedModel], source: DataSource) -> None:
        self._load = load
        shape = source.sample_shape
        self._size: Size | None = tuple(shape[1:]) if not source.is_text and len(shape) == 3 else None
        self.found: dict[str, Borders] = {}

    def __call__(self, path: Path) -> LoadedModel:
        loaded = self._load(path)
        if self._size is not None:
            self.found[str(loaded.path)] = borders(loaded, [self._size])
        return loaded

    def at(self, model: str) -> tuple[Size, Borders] | None:
        """(the data's input size, the borders) of a checkpoint scored in this run, when computed."""
        found = self.found.get(model)
        return None if found is None or self._size is None else (self._size, found)


@dataclass(frozen=True)
class Agreement:
    """The receptive-field claim (Richter et al. 2021) at one size: the layers past the border (output layer
    left out) against the tail."""

    size: Size
    border: tuple[str, ...]
    tail: tuple[str, ...]

    @property
    def both(self) -> tuple[str, ...]:
        return tuple(name for name in self.border if name in self.tail)

    @property
    def holds(self) -> bool:
        """Every layer past the border is in the measured tail (vacuous when none is past it)."""
        return len(self.both) == len(self.border)


def agreement(item: SizeResult) -> Agreement | None:
    """Border against tail over the layers the verdict averages (D: every layer but the output layer)."""
    if item.border is None:
        return None
    averaged = set(item.result.verdict.averaged_layers)
    border = tuple(name for name in item.border if name in averaged)
    return Agreement(item.size, border, tuple(item.result.verdict.tail))
