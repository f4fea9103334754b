"""Paired encode/decode of every element the store keeps; each group carries its own encoding version."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone

import h5py
import numpy as np

from satcli.core.spectral import LayerScore
from satcli.core.state import ClassStats, LayerMeta, LayerStats, OpaqueState

# 1: saturation only. 2: layer groups carry encoding attributes and may hold other analyses' state (classes).
# 3: layer groups hold no `cov` (it is m2 / (n - 1)) and `m2` only where a merge or projection needs it.
SCHEMA_VERSION = 3
FORMAT_NAME = "satcli-store"
ACTIVATION_DTYPES = ("float32", "float16")
RESERVED_FILE_ATTRS = frozenset({"format", "schema_version", "satcli_version", "created"})


def now_iso() -> str:
    """The current time as ISO-8601 UTC with an explicit offset (parseable by datetime.fromisoformat)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_json(value: Mapping[str, object], what: str) -> str:
    """Strict JSON text for an options/thresholds dict, so any JSON reader can parse the attribute."""
    try:
        return json.dumps(dict(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


def plain(value: object) -> object:
    """An attribute value as a plain Python object (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


# --- layer statistics (the saturation analysis' state) -----------------------------------------------

# layer-stats 1: mean, cov, m2, eigenvalues. 2: mean, eigenvalues, and m2 only when kept.
LAYER_STATS = ("layer-stats", 2)
CLASS_STATS = ("class-stats", 1)


def _checked_dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A dataset with HDF5's fletcher32 checksum, so a flipped byte is an error on read, not a wrong number.

    Not compressed: gzip + shuffle shrinks a float64 m2 by about 10% only, at about 7 MB/s (measured on
    GPT-2-shaped layers, docs/performance.md), so it does not pay for the d x d moments."""
    group.create_dataset(name, data=data, fletcher32=data.size > 0)


def _mark(group: h5py.Group, encoding: tuple[str, int]) -> None:
    group.attrs["encoding_type"], group.attrs["encoding_version"] = encoding


def check_layer_stats(layer: LayerMeta, stats: LayerStats) -> None:
    """Refuse statistics whose shapes do not match the layer's width."""
    width = layer.width
    m2 = (width, width) if stats.m2 is None else np.shape(stats.m2)
    shapes = (np.shape(stats.mean), m2, np.shape(stats.eigenvalues))
    if shapes != ((width,), (width, width), (width,)):
        raise ValueError(
            f"statistics for {layer.name!r} do not match width {width}: "
            f"mean {shapes[0]}, m2 {shapes[1]}, eigenvalues {shapes[2]}"
        )


def entries_json(entries: Mapping[str, Mapping[str, object]]) -> str | None:
    """Other analyses' score entries as strict JSON, or None when they hold a value JSON cannot (NaN)."""
    try:
        return json.dumps({name: dict(entry) for name, entry in entries.items()}, allow_nan=False)
    except (TypeError, ValueError):
        return None


def encode_layer_stats(
    group: h5py.Group,
    stats: LayerStats,
    score: LayerScore | None,
    keep_moments: bool = True,
    entries: str | None = None,
) -> None:
    """Mean, eigenvalues and the score at the run's thresholds: all that re-scoring needs. With `keep_moments`
    (and moments present) also m2, which merging and projecting need; the covariance is m2 / (n - 1).
    `entries` (entries_json): other analyses' score entries, which re-scoring takes when m2 is not kept."""
    samples = int(stats.samples)
    for name, data in (("mean", stats.mean), ("eigenvalues", stats.eigenvalues)):
        _checked_dataset(group, name, np.asarray(data, dtype=np.float64))
    if keep_moments and stats.m2 is not None:
        _checked_dataset(group, "m2", np.asarray(stats.m2, dtype=np.float64))
    if entries is not None:
        group.attrs["entries"] = entries
    if stats.rounding is not None:
        group.attrs["rounding"] = float(stats.rounding)  # a float32 run's proven covariance error bound
    group.attrs.update(
        {
            "samples": samples,
            "nonfinite": bool(stats.nonfinite),
            "k": -1 if score is None or score.k is None else int(score.k),
            "saturation": math.nan if score is None or score.saturation is None else float(score.saturation),
            "flags": json.dumps(list(score.flags) if score is not None else []),
        }
    )
    _mark(group, LAYER_STATS)


def decode_layer_entries(group: h5py.Group) -> dict[str, dict]:
    """The stored score entries of other analyses (layer-stats 2 without m2; none otherwise)."""
    text = group.attrs.get("entries")
    return {} if text is None else dict(json.loads(plain(text)))


def decode_layer_meta(group: h5py.Group) -> LayerMeta:
    """A layer group's description (every schema)."""
    attrs = group.attrs
    return LayerMeta(
        name=str(attrs["name"]),
        type=str(attrs["type"]),
        kind=str(attrs["kind"]),
        width=int(attrs["width"]),
        order=int(attrs["order"]),
        reduction=str(attrs["reduction"]),
        activations_reduction=str(attrs["activations_reduction"]),
    )


def decode_layer_stats(group: h5py.Group) -> LayerStats:
    """The moments of a layer group (schema 1 groups have no encoding attributes and the same layout as
    encoding 1); m2 is None when the group does not keep it (encoding 2)."""
    _expect(group, LAYER_STATS, optional=True)
    return LayerStats(
        samples=int(group.attrs["samples"]),
        mean=group["mean"][()],
        m2=group["m2"][()] if "m2" in group else None,
        eigenvalues=group["eigenvalues"][()],
        nonfinite=bool(group.attrs["nonfinite"]),
        rounding=float(group.attrs["rounding"]) if "rounding" in group.attrs else None,  # float64 runs, older stores
    )


# --- other analyses' per-layer state -----------------------------------------------------------------


def encode_class_stats(group: h5py.Group, stats: ClassStats) -> None:
    """Per-class labels, counts and shifted float64 sums, and the shift."""
    group.create_dataset("labels", data=np.asarray(stats.labels, dtype=np.int64))
    group.create_dataset("counts", data=np.asarray(stats.counts, dtype=np.int64))
    _checked_dataset(group, "sums", np.asarray(stats.sums, dtype=np.float64))
    _checked_dataset(group, "shift", np.asarray(stats.shift, dtype=np.float64))
    group.attrs["unlabeled"] = int(stats.unlabeled)
    _mark(group, CLASS_STATS)


def decode_class_stats(group: h5py.Group) -> ClassStats:
    """The inverse of encode_class_stats."""
    _expect(group, CLASS_STATS)
    return ClassStats(
        labels=group["labels"][()],
        counts=group["counts"][()],
        sums=group["sums"][()],
        shift=group["shift"][()],
        unlabeled=int(group.attrs.get("unlabeled", 0)),
    )


def encode_state(group: h5py.Group, element: Mapping[str, object], encoding: tuple[str, int]) -> None:
    """Any analysis' plain state (encoding `<name>-state`): every array a dataset, every int/float an attribute."""
    for key, value in element.items():
        if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
            group.attrs[key] = value
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"state {key!r} of {encoding[0]} must be numbers, got dtype {array.dtype}")
        if array.dtype.kind == "f":
            _checked_dataset(group, key, array.astype(np.float64, copy=False))
        else:
            group.create_dataset(key, data=array)
    _mark(group, encoding)


def decode_state(group: h5py.Group) -> dict[str, object]:
    """The inverse of encode_state."""
    attrs = group.attrs.items()
    out: dict[str, object] = {key: plain(value) for key, value in attrs if not key.startswith("encoding_")}
    out.update({key: item[()] for key, item in _members(group) if isinstance(item, h5py.Dataset)})
    return out


def encode_opaque(group: h5py.Group, state: OpaqueState) -> None:
    """A state this satcli could not read, written back as it was read."""
    group.attrs.update(state.attrs)
    for key, data in state.datasets.items():
        group.create_dataset(key, data=data, fletcher32=data.size > 0 and data.dtype.kind == "f")
    for key, sub in state.groups.items():
        encode_opaque(group.create_group(key), sub)


def decode_opaque(group: h5py.Group) -> OpaqueState:
    """Every attribute, dataset and subgroup of a group, as stored."""
    members = _members(group)
    return OpaqueState(
        attrs=dict(group.attrs.items()),
        datasets={key: item[()] for key, item in members if isinstance(item, h5py.Dataset)},
        groups={key: decode_opaque(item) for key, item in members if isinstance(item, h5py.Group)},
    )


def _members(group: h5py.Group) -> list[tuple[str, object]]:
    """A group's (name, member) pairs; damaged link metadata (h5py raises RuntimeError) is a ValueError, which
    the reader reports as a damaged store."""
    try:
        return list(group.items())
    except RuntimeError as exc:
        raise ValueError(f"cannot list group {group.name}: {exc}") from exc


# Encode/decode pairs by encoding type, as anndata keeps them: an analysis whose state is a plain dict needs
# no entry (encoding `<name>-state`); classes keeps its own encoding so stores of every schema read alike.
ENCODINGS = {CLASS_STATS[0]: (ClassStats, encode_class_stats, decode_class_stats)}


def encode_extra(layer_group: h5py.Group, name: str, element: object, version: int = 1) -> None:
    """An analysis' state element as subgroup `name` of the layer group (`version`: its state version)."""
    group = layer_group.create_group(name)
    for kind, encode, _ in ENCODINGS.values():
        if isinstance(element, kind):
            encode(group, element)
            return
    if isinstance(element, OpaqueState):
        encode_opaque(group, element)
    elif isinstance(element, Mapping):
        encode_state(group, element, (f"{name}-state", int(version)))
    else:
        raise ValueError(f"{name} state must be a dict of arrays and numbers, got {type(element).__name__}")


def decode_extras(layer_group: h5py.Group, versions: Mapping[str, int]) -> dict[str, object]:
    """Every analysis' state element stored under a layer group (none in schema 1), by analysis name.

    `versions`: the newest state version this satcli reads per analysis; a state of another analysis or of a
    newer version is kept as an OpaqueState (copied on merge and append, reported, never scored).
    """
    out: dict[str, object] = {}
    for name, group in _members(layer_group):
        if not isinstance(group, h5py.Group):
            continue
        kind, version = plain(group.attrs.get("encoding_type")), plain(group.attrs.get("encoding_version"))
        known = name in versions and isinstance(version, int)
        if kind in ENCODINGS and name in versions:
            out[name] = ENCODINGS[kind][2](group)  # type: ignore[index]
        elif known and kind == f"{name}-state" and version <= versions[name]:  # type: ignore[operator]
            out[name] = decode_state(group)
        else:
            out[name] = decode_opaque(group)
    return out


def _expect(group: h5py.Group, encoding: tuple[str, int], optional: bool = False) -> None:
    kind = group.attrs.get("encoding_type")
    if kind is None and optional:
        return
    version = plain(group.attrs.get("encoding_version"))
    if plain(kind) != encoding[0] or not isinstance(version, int) or version > encoding[1]:
        raise ValueError(
            f"group {group.name} has encoding {plain(kind)!r} version {version!r}; "
            f"this satcli reads {encoding[0]!r} up to version {encoding[1]}"
        )
