"""Per-layer linear CKA between stored checkpoints, from the per-input pooled activations stores keep with --activations
(docs/method.md, "Representation similarity (CKA)"): the first checkpoint against each other one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from satcli.core.cka import add_cross, add_rows, linear_cka
from satcli.store.reader import StoredCheckpoint, read_activations
from satcli.store.rescore import load_checkpoints, parse_store_ref

HINT = "`satcli similarity MODEL_A MODEL_B --data SPEC` measures it from the models"


@dataclass(frozen=True)
class StoredCKA:
    """CKA of each shared layer between the baseline and every other checkpoint: values[layer][i] for other i."""

    layers: tuple[str, ...]
    values: dict[str, list[float | None]]


def stored_cka(refs: Sequence[str]) -> StoredCKA | str:
    """The per-layer CKA, or the one-line reason it cannot be computed from these stores."""
    loaded = [(c.ref.path, c.checkpoint) for text in refs for c in load_checkpoints(parse_store_ref(text))]
    if len(loaded) < 2:
        return "no per-layer CKA: fewer than two checkpoints"
    (base_path, base), others = loaded[0], loaded[1:]
    for _, other in others:
        reason = _mismatch(base, other)
        if reason:
            return f"no per-layer CKA: {reason}; {HINT}"
    layers = tuple(
        layer.meta.name
        for layer in base.layers
        if all(any(o.meta.name == layer.meta.name for o in other.layers) for _, other in others)
    )
    if not layers:
        return f"no per-layer CKA: the checkpoints share no layer name; {HINT}"
    values: dict[str, list[float | None]] = {}
    for name in layers:
        x, rows_x = add_rows(None, read_activations(base_path, base.key, name))
        values[name] = []
        for path, other in others:
            y, rows_y = add_rows(None, read_activations(path, other.key, name))
            values[name].append(linear_cka(x, y, add_cross(None, rows_x, rows_y)))
    return StoredCKA(layers, values)


def _mismatch(a: StoredCheckpoint, b: StoredCheckpoint) -> str | None:
    """Why two checkpoints' stored activations are not rows of the same inputs (None when they are)."""
    if not all(layer.has_activations for layer in (*a.layers, *b.layers)):
        return "a store was written without activations (analyze stores them with --activations)"
    same = a.meta.data_spec == b.meta.data_spec and a.meta.options.get("data") == b.meta.options.get("data")
    if not same or a.num_inputs != b.num_inputs:
        return "the checkpoints were analyzed on different data"
    if any(a.meta.options.get(k) != b.meta.options.get(k) for k in ("conv_method", "sequence_method")):
        return "the checkpoints were pooled differently"
    return None
