"""Reads stores of every schema this satcli knows, checking format and version first."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from satcli.analyses.registry import state_versions
from satcli.core.state import CheckpointMeta, CheckpointState, LayerMeta, LayerState, LayerStats
from satcli.errors import SatcliError, one_line
from satcli.store.encoding import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    decode_extras,
    decode_layer_entries,
    decode_layer_meta,
    decode_layer_stats,
    plain,
)


@dataclass(frozen=True)
class StoredLayer:
    """One layer as read back from a store."""

    meta: LayerMeta
    stats: LayerStats
    k: int | None
    saturation: float | None
    flags: tuple[str, ...]
    has_activations: bool
    extras: dict[str, object] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)

    @property
    def cov(self) -> np.ndarray | None:
        """m2 / (n - 1), all NaN below 2 samples (as schema 1 and 2 stored it); None when m2 was not kept."""
        m2 = self.stats.m2
        if m2 is None:
            return None
        n = int(self.stats.samples)
        return m2 / (n - 1) if n >= 2 else np.full(np.shape(m2), np.nan)


@dataclass(frozen=True)
class StoredCheckpoint:
    """One finished checkpoint as read back from a store; `key` addresses it in read_activations."""

    key: str
    meta: CheckpointMeta
    layers: tuple[StoredLayer, ...]
    num_inputs: int
    created: str
    complete: bool

    def state(self) -> CheckpointState:
        """The checkpoint as the engine's final state, for the shared scoring route."""
        layers = tuple(
            LayerState(layer.meta, layer.stats, dict(layer.extras), dict(layer.entries)) for layer in self.layers
        )
        return CheckpointState(self.meta, layers, self.num_inputs)


@contextlib.contextmanager
def open_store(path: Path) -> Iterator[h5py.File]:
    """Open a store read-only after checking it is one this satcli can read."""
    path = Path(path)
    if not path.exists():
        raise SatcliError(f"store not found: {path}")
    if path.is_dir():
        raise SatcliError(f"{path} is a directory, not a satcli store")
    if not h5py.is_hdf5(path):
        raise SatcliError(f"{path} is not an HDF5 file, so not a satcli store")
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise SatcliError(f"cannot open store {path}: {exc}") from exc
    with file:
        if plain(file.attrs.get("format")) != FORMAT_NAME:
            raise SatcliError(f"{path} is an HDF5 file but not a satcli store (no format={FORMAT_NAME!r})")
        check_schema(path, file.attrs.get("schema_version"))
        try:
            yield file
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise SatcliError(f"{path} is a damaged satcli store: {one_line(exc)}") from exc


def check_schema(path: Path, value: object) -> None:
    version = plain(value)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SatcliError(f"{path} is a damaged satcli store: bad schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SatcliError(
            f"{path} was written by a newer satcli (schema {version}); "
            f"this satcli reads up to {SCHEMA_VERSION} — upgrade satcli"
        )


def _checkpoint_keys(file: h5py.File) -> list[str]:
    return sorted(file["checkpoints"].keys(), key=int)


def _read_layer(group: h5py.Group) -> StoredLayer:
    attrs = group.attrs
    k = int(attrs["k"])
    saturation = float(attrs["saturation"])
    return StoredLayer(
        meta=decode_layer_meta(group),
        stats=decode_layer_stats(group),
        k=None if k < 0 else k,
        saturation=None if math.isnan(saturation) else saturation,
        flags=tuple(str(flag) for flag in json.loads(attrs["flags"])),
        has_activations="activations" in group,
        extras=decode_extras(group, state_versions()),
        entries=decode_layer_entries(group),
    )


def _read_checkpoint(path: Path, key: str, group: h5py.Group) -> StoredCheckpoint:
    attrs = group.attrs
    check_schema(path, attrs["schema_version"])
    meta = CheckpointMeta(
        model_path=str(attrs["model_path"]),
        model_sha256=str(attrs["model_sha256"]),
        model_format=str(attrs["model_format"]),
        data_spec=str(attrs["data_spec"]),
        options=json.loads(attrs["options"]),
        thresholds=json.loads(attrs["thresholds"]),
    )
    layers_group = group["layers"]
    layers = tuple(_read_layer(layers_group[name]) for name in sorted(layers_group.keys(), key=int))
    return StoredCheckpoint(
        key=key,
        meta=meta,
        layers=layers,
        num_inputs=int(attrs["num_inputs"]),
        created=str(attrs["created"]),
        complete=bool(attrs["complete"]),
    )


def read_store(path: Path) -> tuple[dict[str, object], list[StoredCheckpoint]]:
    """The file attributes and every complete checkpoint, in the order written; incomplete ones are skipped."""
    with open_store(path) as file:
        attrs = {key: plain(value) for key, value in file.attrs.items()}
        checkpoints = []
        for key in _checkpoint_keys(file):
            group = file["checkpoints"][key]
            if bool(group.attrs.get("complete", False)):
                checkpoints.append(_read_checkpoint(Path(path), key, group))
        return attrs, checkpoints


def _checkpoint_group(file: h5py.File, path: Path, key: str) -> h5py.Group:
    checkpoints = file["checkpoints"]
    if key not in checkpoints:
        raise SatcliError(f"{path} has no checkpoint {key!r} (has {', '.join(_checkpoint_keys(file)) or 'none'})")
    group = checkpoints[key]
    check_schema(path, group.attrs["schema_version"])
    if not bool(group.attrs["complete"]):
        raise SatcliError(f"checkpoint {key} in {path} is incomplete (its run did not finish)")
    return group


def read_activations(path: Path, checkpoint_key: str, layer_name: str) -> np.ndarray:
    """The (num_inputs, width) activations of one layer, in the stored dtype (float32 or float16)."""
    with open_store(path) as file:
        group = _checkpoint_group(file, Path(path), checkpoint_key)
        layers = group["layers"]
        for index in sorted(layers.keys(), key=int):
            layer = layers[index]
            if str(layer.attrs["name"]) != layer_name:
                continue
            if "activations" not in layer:
                raise SatcliError(f"checkpoint {checkpoint_key} in {path} was stored without activations")
            return layer["activations"][()]
        raise SatcliError(f"checkpoint {checkpoint_key} in {path} has no layer {layer_name!r}")


def read_labels(path: Path, checkpoint_key: str) -> np.ndarray | None:
    """The (num_inputs,) int64 labels of a checkpoint (-1 = unlabeled), or None when none were stored."""
    with open_store(path) as file:
        group = _checkpoint_group(file, Path(path), checkpoint_key)
        return group["labels"][()] if "labels" in group else None
