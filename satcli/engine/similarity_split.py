"""Splitting `satcli similarity` over processes: every part streams the CKA sums of its disjoint, contiguous
shard of the data (engine/distributed.py), and the parts' float64 sums merge exactly in data order
(core/cka.py `merge_parts`: each part is re-expressed around the first part's shifts, then added).

Two ways in, as for analyze: `--shard I/K` jobs write their sums to a file that `satcli merge` joins, and
under torchrun each finished pass is all-gathered and merged, so rank 0 holds the one-process sums.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace

from satcli.core.cka import Cross, Side, merge_parts, merge_sides
from satcli.engine.distributed import gather_objects
from satcli.engine.similarity import OnPass, PassSums, SumsHeader
from satcli.errors import SatcliError


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


class RanksFailed(SatcliError):
    """Another rank (or this one) failed; every rank raises this at the same gather."""


def stream_gathered(stream: Callable[[OnPass], None], on_pass: OnPass, rank: int) -> None:
    """Run `stream` under torchrun: each finished pass of every rank is all-gathered, merged in rank order and
    handed to `on_pass` on rank 0. A rank that fails sends its error to the gather the others wait in, so no
    rank is left waiting in a collective and every rank reports every failure."""

    def gathered(header: SumsHeader, sums: PassSums) -> None:
        items = _gather((header, sums))
        headers = [item[0] for item in items]
        check_headers(headers, [f"rank {r}" for r in range(len(headers))])
        if rank == 0:
            on_pass(header, merge_pass(header, [item[1] for item in items]))

    try:
        stream(gathered)
    except RanksFailed:
        raise
    except SatcliError as exc:
        _gather(str(exc))


def _gather(value: object) -> list[tuple[SumsHeader, PassSums]]:
    """Every rank's value; RanksFailed naming each rank that sent an error instead."""
    items = gather_objects(value)
    failures = [f"rank {r}: {item}" for r, item in enumerate(items) if isinstance(item, str)]
    if failures:
        raise RanksFailed("; ".join(failures))
    return items  # type: ignore[return-value]
