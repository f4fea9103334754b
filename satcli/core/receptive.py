"""Receptive fields of a layer graph (docs/method.md, "Receptive field and input resolution"; Richter et al. 2021).

Along one input-to-layer path, per spatial axis, a sliding window with kernel k, dilation d and stride s
grows the receptive field and the jump (the effective stride, in input pixels):

    r = r_prev + (k - 1) * d * j_prev,    j = j_prev * s,    starting from r = j = 1 at the input.

Where paths merge (a residual add, a concatenation) the layer has a smallest and a largest receptive field
over its paths, r_min and r_max. An op that mixes every position (global pooling, a flatten into a dense
layer, attention) makes the field the whole input, written here as None per axis ("infinite"). Everything in
this module is plain integer arithmetic: which op is which is the graph reader's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Axes = tuple[int | None, ...]


@dataclass(frozen=True)
class Field:
    """Per spatial axis: the smallest and largest receptive field over the paths, and the jump.

    None on an axis means the whole input. ``cause`` names the op that first made a path see the whole input.
    """

    r_min: Axes
    r_max: Axes
    jump: Axes
    cause: str | None = None

    @property
    def whole(self) -> bool:
        """True when even the smallest field is the whole input (global pooling and everything after it)."""
        return all(r is None for r in self.r_min)


def start(axes: int) -> Field:
    """The model input: every position sees itself, r = j = 1 on each axis."""
    return Field((1,) * axes, (1,) * axes, (1,) * axes)


def whole(axes: int, cause: str) -> Field:
    """A field that covers the whole input on every axis, made so by ``cause``."""
    return Field((None,) * axes, (None,) * axes, (None,) * axes, cause)


def through(field: Field, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> Field:
    """The field after a sliding window: r + (k - 1) * d * j and j * s on every axis (None stays None)."""

    def grow(r: int | None, j: int | None, k: int, d: int) -> int | None:
        return None if r is None or j is None else r + (k - 1) * d * j

    axes = range(len(field.jump))
    return Field(
        tuple(grow(field.r_min[a], field.jump[a], kernel[a], dilation[a]) for a in axes),
        tuple(grow(field.r_max[a], field.jump[a], kernel[a], dilation[a]) for a in axes),
        tuple(None if field.jump[a] is None else field.jump[a] * stride[a] for a in axes),  # type: ignore[operator]
        field.cause,
    )


def merge(fields: Sequence[Field]) -> Field:
    """Several paths meeting (add, multiply, concatenate): the smallest r_min, the largest r_max, per axis.

    The jump is the largest finite one (paths that meet have equal maps, hence equal jumps, in a plain CNN)."""
    if len(fields) == 1:
        return fields[0]
    axes = range(len(fields[0].jump))

    def smallest(values: list[int | None]) -> int | None:
        finite = [v for v in values if v is not None]
        return min(finite) if finite else None

    def largest(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else max(v for v in values if v is not None)

    def largest_finite(values: list[int | None]) -> int | None:
        finite = [v for v in values if v is not None]
        return max(finite) if finite else None

    return Field(
        tuple(smallest([f.r_min[a] for f in fields]) for a in axes),
        tuple(largest([f.r_max[a] for f in fields]) for a in axes),
        tuple(largest_finite([f.jump[a] for f in fields]) for a in axes),
        next((f.cause for f in fields if f.cause is not None), None),
    )


def past_border(field: Field, size: Sequence[int]) -> bool:
    """True when the layer cannot see new context at input ``size``: r_min > s on every axis.

    One axis still inside the image is enough for a layer to integrate new context along it, so a
    non-square input needs the border passed on all axes."""
    return all(r is None or r > s for r, s in zip(field.r_min, size, strict=True))
