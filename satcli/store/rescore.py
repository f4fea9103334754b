"""Re-score stored checkpoints without the model or the data (`satcli report`, `compare`, `check`).

A store keeps every layer's sample count, mean, eigenvalues and non-finite flag, which is all that
k, saturation, the average and the verdict depend on; so any threshold can be applied after the fact,
and at the thresholds of the original run the numbers are exactly the ones `analyze` printed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from satcli.analyses.score import score_state
from satcli.core.results import CheckpointResult
from satcli.core.verdict import ThresholdOverrides, Thresholds
from satcli.errors import SatcliError
from satcli.store.reader import StoredCheckpoint, read_store

STORE_SUFFIXES = (".h5", ".hdf5")
# STORE.h5:0001 selects one checkpoint group; the part after the last colon must be a decimal index.
_KEYED_REF = re.compile(r"^(?P<path>.+):(?P<key>\d+)$")


@dataclass(frozen=True)
class StoreRef:
    """A store path and optionally one checkpoint group in it (None: every finished checkpoint)."""

    path: Path
    key: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.key is None else f"{self.path}:{self.key}"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A stored checkpoint with the reference it was read through and a short label for output."""

    ref: StoreRef
    checkpoint: StoredCheckpoint
    label: str


def parse_store_ref(text: str) -> StoreRef:
    """`runs.h5` or `runs.h5:0001`; an existing file whose name contains a colon is taken as a whole."""
    path = Path(text)
    match = _KEYED_REF.match(text)
    if match is None or path.exists():
        return StoreRef(path)
    return StoreRef(Path(match["path"]), match["key"])


def looks_like_store(text: str) -> bool:
    """True for an HDF5 file (models never are), or a missing path named like a store (STORE.h5[:KEY])."""
    ref = parse_store_ref(text)
    if ref.path.is_file():
        return h5py.is_hdf5(ref.path)
    return ref.key is not None or ref.path.suffix.lower() in STORE_SUFFIXES


def load_checkpoints(ref: StoreRef) -> list[LoadedCheckpoint]:
    """The finished checkpoints a reference names, in the order written; raises SatcliError when none."""
    attrs, checkpoints = read_store(ref.path)
    if attrs.get("partial"):
        shard = f"{attrs.get('shard_index')}/{attrs.get('shard_count')}"
        raise SatcliError(f"{ref.path} is a partial store (shard {shard}); merge the complete shard set first")
    if ref.key is not None:
        chosen = [c for c in checkpoints if int(c.key) == int(ref.key)]
        if not chosen:
            have = ", ".join(c.key for c in checkpoints) or "none"
            raise SatcliError(f"{ref.path} has no finished checkpoint {ref.key} (finished: {have})")
        return [LoadedCheckpoint(ref, chosen[0], f"{ref.path}:{chosen[0].key}")]
    if not checkpoints:
        raise SatcliError(f"{ref.path} holds no finished checkpoint")
    if len(checkpoints) == 1:
        return [LoadedCheckpoint(ref, checkpoints[0], str(ref.path))]
    return [LoadedCheckpoint(StoreRef(ref.path, c.key), c, f"{ref.path}:{c.key}") for c in checkpoints]


def stored_thresholds(checkpoint: StoredCheckpoint) -> Thresholds:
    """The thresholds the checkpoint was scored with; values a store does not record take the defaults."""
    recorded = checkpoint.meta.thresholds
    base = Thresholds()
    values: dict[str, float | int] = {}
    for name, default in base.to_dict().items():
        value = recorded.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SatcliError(f"checkpoint {checkpoint.key} has a non-numeric stored threshold {name}={value!r}")
        values[name] = int(value) if isinstance(default, int) else float(value)
    return Thresholds(**values)


def resolve_thresholds(checkpoint: StoredCheckpoint, overrides: ThresholdOverrides) -> Thresholds:
    """Overrides first, then the checkpoint's stored thresholds, then the defaults."""
    return overrides.apply(stored_thresholds(checkpoint))


def rescore(checkpoint: StoredCheckpoint, thresholds: Thresholds, store: str | None = None) -> CheckpointResult:
    """k, saturation, the other analyses, the average and the verdict of a stored checkpoint (pure)."""
    return score_state(checkpoint.state(), thresholds, store)


def rescore_refs(
    refs: Sequence[str], overrides: ThresholdOverrides, keys: Sequence[str] = ()
) -> list[tuple[str, CheckpointResult]]:
    """(label, result) for every finished checkpoint the references (STORE.h5 or STORE.h5:NNNN) and `keys`
    name, re-scored in order: overrides first, then each checkpoint's stored thresholds."""
    for key in keys:
        if not key.isdigit():
            raise SatcliError(f"a checkpoint is chosen by its group number such as 0001, got {key!r}")
    out = []
    for text in refs:
        ref = parse_store_ref(text)
        if keys and ref.key is not None:
            raise SatcliError(f"{text} already names a checkpoint; choose checkpoints one way only")
        for one in [StoreRef(ref.path, key) for key in keys] if keys else [ref]:
            for loaded in load_checkpoints(one):
                thresholds = resolve_thresholds(loaded.checkpoint, overrides)
                out.append((loaded.label, rescore(loaded.checkpoint, thresholds, store=str(ref.path))))
    return out
