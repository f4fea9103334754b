"""The one layer-ordering rule: the union of several checkpoints' layers in forward order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def merge_layer_order(orders: Iterable[Sequence[str]]) -> list[str]:
    """Union of layer names in forward order: the first list's order, later names after their predecessors."""
    merged: list[str] = []
    for order in orders:
        own = set(order)
        for i, name in enumerate(order):
            if name in merged:
                continue
            if i > 0:
                # Right after its predecessor, past layers that only other checkpoints have.
                pos = merged.index(order[i - 1]) + 1
                while pos < len(merged) and merged[pos] not in own:
                    pos += 1
            else:
                # A new first layer goes before the first of its successors already placed, else at the end.
                later = [merged.index(n) for n in order[1:] if n in merged]
                pos = min(later) if later else len(merged)
            merged.insert(pos, name)
    return merged
