"""Paired encode/decode of every element the store keeps; each group carries its own encoding version."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import h5py
import numpy as np

from satcli.core.neighbours import Reservoir
from satcli.core.spectral import LayerScore
from satcli.core.state import ClassStats, LayerMeta, LayerStats

# 1: saturation only. 2: layer groups carry encoding attributes and may hold other analyses' state (classes).
SCHEMA_VERSION = 2
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

LAYER_STATS = ("layer-stats", 1)
CLASS_STATS = ("class-stats", 1)
RESERVOIR = ("reservoir", 1)


def _checked_dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A dataset with HDF5's fletcher32 checksum, so a flipped byte is an error on read, not a wrong number."""
    group.create_dataset(name, data=data, fletcher32=data.size > 0)


def _mark(group: h5py.Group, encoding: tuple[str, int]) -> None:
    group.attrs["encoding_type"], group.attrs["encoding_version"] = encoding


def check_layer_stats(layer: LayerMeta, stats: LayerStats) -> None:
    """Refuse statistics whose shapes do not match the layer's width."""
    width = layer.width
    shapes = (np.shape(stats.mean), np.shape(stats.m2), np.shape(stats.eigenvalues))
    if shapes != ((width,), (width, width), (width,)):
        raise ValueError(
            f"statistics for {layer.name!r} do not match width {width}: "
            f"mean {shapes[0]}, m2 {shapes[1]}, eigenvalues {shapes[2]}"
        )


def encode_layer_stats(group: h5py.Group, stats: LayerStats, score: LayerScore | None) -> None:
    """Moments, covariance (NaN below 2 samples), eigenvalues and the score at the run's thresholds."""
    samples = int(stats.samples)
    m2 = np.asarray(stats.m2, dtype=np.float64)
    cov = m2 / (samples - 1) if samples >= 2 else np.full(m2.shape, np.nan)
    arrays = {"mean": stats.mean, "cov": cov, "m2": m2, "eigenvalues": stats.eigenvalues}
    for name, data in arrays.items():
        _checked_dataset(group, name, np.asarray(data, dtype=np.float64))
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
    """The moments of a layer group (schema 1 groups have no encoding attributes and the same layout)."""
    _expect(group, LAYER_STATS, optional=True)
    return LayerStats(
        samples=int(group.attrs["samples"]),
        mean=group["mean"][()],
        m2=group["m2"][()],
        eigenvalues=group["eigenvalues"][()],
        nonfinite=bool(group.attrs["nonfinite"]),
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


def encode_reservoir(group: h5py.Group, reservoir: Reservoir) -> None:
    """A nearest-neighbour reservoir: its uint64 keys, float64 rows, capacity and samples seen."""
    group.create_dataset("keys", data=np.asarray(reservoir.keys, dtype=np.uint64))
    _checked_dataset(group, "rows", np.asarray(reservoir.rows, dtype=np.float64))
    group.attrs["capacity"] = int(reservoir.capacity)
    group.attrs["seen"] = int(reservoir.seen)
    _mark(group, RESERVOIR)


def decode_reservoir(group: h5py.Group) -> Reservoir:
    """The inverse of encode_reservoir."""
    _expect(group, RESERVOIR)
    return Reservoir(int(group.attrs["capacity"]), group["keys"][()], group["rows"][()], int(group.attrs["seen"]))


EXTRAS: dict[str, tuple[type, Callable[..., None], Callable[[h5py.Group], object]]] = {
    "classes": (ClassStats, encode_class_stats, decode_class_stats),
    "twonn": (Reservoir, encode_reservoir, decode_reservoir),
    "mle": (Reservoir, encode_reservoir, decode_reservoir),
}


def encode_extra(layer_group: h5py.Group, name: str, element: object) -> None:
    """Another analysis' state element as subgroup `name` of the layer group."""
    kind, encode, _ = EXTRAS[name]
    if not isinstance(element, kind):
        raise ValueError(f"{name} state must be a {kind.__name__}, got {type(element).__name__}")
    encode(layer_group.create_group(name), element)


def decode_extras(layer_group: h5py.Group) -> dict[str, object]:
    """Every known analysis' state element stored under a layer group (none in schema 1)."""
    return {name: decode(layer_group[name]) for name, (_, _, decode) in EXTRAS.items() if name in layer_group}


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
