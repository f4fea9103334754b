"""Splitting `satcli similarity` over processes: every part streams the CKA sums of its disjoint, contiguous
shard of the data (engine/distributed.py), and the parts' float64 sums merge exactly in data order
(core/similarity.py `merge_pass`: each part is re-expressed around the first part's shifts, then added).

Two ways in, as for analyze: `--shard I/K` jobs write their sums to a file that `satcli merge` joins, and
under torchrun each finished pass is all-gathered and merged, so rank 0 holds the one-process sums.
"""

from __future__ import annotations

from collections.abc import Callable

from satcli.core.similarity import OnPass, PassSums, SumsHeader, check_headers, merge_pass
from satcli.engine.distributed import gather_objects
from satcli.errors import SatcliError


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
