"""Score many checkpoints in one call: natural order, the data decoded once, the store committed per checkpoint.

`score_checkpoints` yields each checkpoint's result (or why it failed) as soon as it is done, so the caller
can print it at once; a store given for several checkpoints is committed after each one, so a run that is
killed keeps every checkpoint it finished. It prints nothing; progress is a callback.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from satcli.core.results import CheckpointResult
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta
from satcli.data import DataSource
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import Observer, analyze
from satcli.errors import DataError, SatcliError
from satcli.models import LoadedModel
from satcli.store.lock import store_lock
from satcli.store.observer import StoreObserver
from satcli.store.writer import StoreWriter

# Above this many bytes of decoded float32 inputs the data are decoded again for every checkpoint instead
# of being held in memory (e.g. a large image folder at full resolution).
MATERIALIZE_MAX_BYTES = 4 << 30
STORE_ATTRS: dict[str, object] = {"command": "analyze"}

# Given a checkpoint and the number of inputs, enters a progress display and gives the per-batch callback.
Tracker = Callable[[Path, int], AbstractContextManager[Callable[[int], None]]]

# Scores one loaded model on the data, writing its store group: score_checkpoint's signature.
ScoreOne = Callable[..., CheckpointResult]


@dataclass(frozen=True)
class Failure:
    """A checkpoint that could not be loaded or scored, with the one-line reason."""

    path: Path
    reason: str


def natural_key(text: str) -> tuple[tuple[int, str, int], ...]:
    """Sort key that compares runs of digits as numbers: epoch_2 < epoch_10, case-insensitively."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, "", int(part)) if i % 2 else (1, part.casefold(), 0) for i, part in enumerate(parts))


def order_checkpoints(paths: Sequence[Path], sort: bool = True) -> list[Path]:
    """The paths in natural order of their full text (ties: plain text order), or as given when not sort."""
    if not sort:
        return list(paths)
    return sorted(paths, key=lambda p: (natural_key(str(p)), str(p)))


def decoded_bytes(source: DataSource) -> int:
    """Memory the decoded float32 inputs of a data source take."""
    return 4 * source.num_samples * math.prod(source.sample_shape)


@contextlib.contextmanager
def _no_progress(path: Path, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def score_checkpoints(
    paths: Sequence[Path],
    source: DataSource,
    options: AnalysisOptions,
    load: Callable[[Path], LoadedModel],
    store_for: Callable[[Path], Path | None],
    track: Tracker | None = None,
    *,
    wait: bool = False,
    score: ScoreOne | None = None,
    append: bool = False,
) -> Iterator[CheckpointResult | Failure]:
    """Score each checkpoint in the given order; yield its result, or a Failure and go on to the next one.

    With more than one checkpoint the data are decoded into memory once, unless they would take more than
    MATERIALIZE_MAX_BYTES; an error while decoding, or a DataError found mid-run (an unreadable image, a
    non-finite input under the fail policy), is the data's and ends the run, named without the checkpoint.
    `store_for(path)` names the checkpoint's store (None: no store); the first checkpoint written to a store
    in this run replaces any file there (with `append`: is added to it too), later ones are added to it, and each
    is committed before it is yielded.
    Every store's write lock is held for the whole run, so no other run can write between two checkpoints
    (`wait`: wait for a store another process is writing, instead of failing with StoreError).
    `score` replaces score_checkpoint (e.g. a split run's).
    """
    track = track or _no_progress
    with contextlib.ExitStack() as locks:
        targets = {os.path.abspath(t): t for t in reversed([store_for(p) for p in paths]) if t is not None}
        for target in targets.values():  # each store once, named as given
            locks.enter_context(store_lock(Path(target), wait=wait))
        yield from _score_all(paths, source, options, load, store_for, track, score or score_checkpoint, append)


def _score_all(
    paths: Sequence[Path],
    source: DataSource,
    options: AnalysisOptions,
    load: Callable[[Path], LoadedModel],
    store_for: Callable[[Path], Path | None],
    track: Tracker,
    score: ScoreOne,
    append: bool = False,
) -> Iterator[CheckpointResult | Failure]:
    if len(paths) > 1 and decoded_bytes(source) <= MATERIALIZE_MAX_BYTES:
        source.materialize()
    written: set[str] = set()
    for path in paths:
        try:
            loaded = load(path)
            target = store_for(path)
            key = None if target is None else os.path.abspath(target)
            with track(path, source.num_samples) as advance:
                result = score(loaded, source, options, target, append=append or key in written, on_batch=advance)
        except DataError:
            raise  # the data's fault, not this checkpoint's: every later one would fail the same way
        except SatcliError as exc:
            yield Failure(path, _reason(path, str(exc)))
            continue
        if key is not None:
            written.add(key)
        yield result


def score_checkpoint(
    loaded: LoadedModel,
    source: DataSource,
    options: AnalysisOptions,
    target: Path | None,
    *,
    append: bool = False,
    on_batch: Callable[[int], None] | None = None,
    attrs: Mapping[str, object] = STORE_ATTRS,
) -> CheckpointResult:
    """Analyze one loaded model; with a target, write (or with append, add) its group and commit the store.

    `attrs` are the store's file attributes (a shard's partial store adds its marks)."""
    # A progress callback may carry an `eigen(done, total)` method (the CLI's bar does) for the eigen step.
    eigen = getattr(on_batch, "eigen", None)
    observers: list[Observer] = [] if on_batch is None else [ProgressObserver(on_batch, eigen)]
    if target is None:
        return analyze(loaded, source, options, observers)
    with StoreWriter(target, attrs, append=append) as writer:
        result = analyze(loaded, source, options, [*observers, StoreObserver.of(writer, options)])
    return replace(result, store=str(target))


class StateObserver:
    """Keeps the engine's final state (the float64 elements other processes need)."""

    wants_rows = False

    def __init__(self) -> None:
        self.state: CheckpointState | None = None

    def started(self, meta: CheckpointMeta, layers: Sequence[LayerMeta]) -> None:
        pass

    def batch(self, rows: dict[str, torch.Tensor], labels: torch.Tensor | None, count: int) -> None:
        pass

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None:
        self.state = state


class ProgressObserver:
    """Calls `advance(number of inputs)` after every batch, and `on_eigen(done, total)` per layer's eigenvalues."""

    wants_rows = False

    def __init__(self, advance: Callable[[int], None], on_eigen: Callable[[int, int], None] | None = None) -> None:
        self._advance = advance
        self._on_eigen = on_eigen

    def eigen(self, done: int, total: int) -> None:
        if self._on_eigen is not None:
            self._on_eigen(done, total)

    def started(self, meta: CheckpointMeta, layers: Sequence[LayerMeta]) -> None:
        pass

    def batch(self, rows: dict[str, torch.Tensor], labels: torch.Tensor | None, count: int) -> None:
        self._advance(count)

    def finished(self, state: CheckpointState, result: CheckpointResult) -> None:
        pass


def _reason(path: Path, message: str) -> str:
    """The error without a leading "PATH: ", since the caller prints the path in front of it."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
