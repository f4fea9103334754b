"""The CKA run's plain records (docs/method.md sec. 12): a report of every pair, the header and per-pass float64
sums a run streams, and how the sums of a split run's parts check and merge (exactly, in data order, via
core/cka.py). No I/O and no model: the engine fills them, the store writes them, render formats them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from satcli.core.cka import Cross, Side, merge_parts, merge_sides
from satcli.errors import SatcliError


@dataclass(frozen=True)
class PairCKA:
    """CKA of layer `a` (of the first model) and layer `b` over `n` inputs; None when undefined."""

    a: str
    b: str
    cka: float | None
    debiased_cka: float | None
    n: int


@dataclass(frozen=True)
class SimilarityReport:
    """Every pair's CKA, the layer lists, and what the run held and skipped."""

    models: tuple[str, ...]
    data: str
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    widths_a: tuple[int, ...]
    widths_b: tuple[int, ...]
    pairs: tuple[PairCKA, ...]
    inputs: int
    skipped: int
    passes: int
    held_bytes: int
    budget: int
    debiased: bool

    @property
    def same_model(self) -> bool:
        return len(self.models) == 1

    def matrix(self, debiased: bool = False) -> list[list[float | None]]:
        """len(layers_a) x len(layers_b) values (symmetric, with the diagonal, for one model)."""
        value = {(p.a, p.b): (p.debiased_cka if debiased else p.cka) for p in self.pairs}
        if self.same_model:
            value.update({(b, a): v for (a, b), v in list(value.items())})
        return [[value.get((a, b)) for b in self.layers_b] for a in self.layers_a]


@dataclass(frozen=True)
class SumsHeader:
    """What a run's sums are of; every part of a split run has the same header (checked before a merge)."""

    models: tuple[str, ...]
    sha256: tuple[str, ...]
    data: str
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    widths_a: tuple[int, ...]
    widths_b: tuple[int, ...]
    reduction: str

    @property
    def two_models(self) -> bool:
        return len(self.models) == 2

    def side_keys(self, pair: tuple[str, str]) -> tuple[tuple[int, str], tuple[int, str]]:
        """The (model, layer) keys of a pair's two sides."""
        return (0, pair[0]), (1 if self.two_models else 0, pair[1])


@dataclass(frozen=True)
class PassSums:
    """One finished pass: every layer's complete side, the cross sums of this pass's pairs (a layer of one model
    with itself has none: `self_cross` of its side), and the run's counts so far."""

    number: int
    passes: int
    pairs: tuple[tuple[str, str], ...]
    sides: dict[tuple[int, str], Side]
    crosses: dict[tuple[str, str], Cross]
    inputs: int
    skipped: int
    held: int


OnPass = Callable[[SumsHeader, PassSums], None]


def check_headers(headers: Sequence[SumsHeader], names: Sequence[str]) -> None:
    """Refuse parts of different runs (models, data, layers, widths or pooling), naming the first difference."""
    first = headers[0]
    for header, name in zip(headers[1:], names[1:], strict=True):
        for item in fields(SumsHeader):
            if item.name == "models":  # the same weights may sit at another path on another machine
                continue
            mine, theirs = getattr(first, item.name), getattr(header, item.name)
            if mine != theirs:
                raise SatcliError(
                    f"{name} is not a part of the same run as {names[0]}: another {item.name.replace('_', ' ')} "
                    f"({_short(theirs)} vs {_short(mine)})"
                )


def _short(value: object, limit: int = 60) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge_all_sides(parts: Sequence[Mapping[tuple[int, str], Side]]) -> dict[tuple[int, str], Side]:
    """Every layer's side over all parts (in data order), around the first part's shift."""
    return {key: functools.reduce(merge_sides, [p[key] for p in parts]) for key in parts[0]}


def merge_pass(
    header: SumsHeader, parts: Sequence[PassSums], sides: dict[tuple[int, str], Side] | None = None
) -> PassSums:
    """The same pass of every part (in data order) as one pass over all their inputs (`sides`: the parts'
    sides merged already)."""
    first = parts[0]
    crosses: dict[tuple[str, str], Cross] = {}
    for pair in first.pairs:
        kx, ky = header.side_keys(pair)
        xs, ys = [p.sides[kx] for p in parts], [p.sides[ky] for p in parts]
        _, _, cross = merge_parts(xs, ys, [p.crosses.get(pair) for p in parts])
        if cross is not None:
            crosses[pair] = cross
    if sides is None:
        sides = merge_all_sides([p.sides for p in parts])
    return replace(
        first,
        sides=sides,
        crosses=crosses,
        inputs=sum(p.inputs for p in parts),
        skipped=sum(p.skipped for p in parts),
        held=max(p.held for p in parts),
    )


def format_size(n: float) -> str:
    """Bytes as a short size: 512B, 3.1MiB, 2.0GiB (no space, so a wrapped line never splits one)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"
