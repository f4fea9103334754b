"""How many passes over the data a memory budget needs: layer widths and a budget in, layer groups out.

Pure arithmetic, no torch. A pass holds, per tracked layer of width d (docs/performance.md, "Memory rule"):
the accumulator's float64 sums, 8 (d + 1)^2 bytes, which become the state's m2 in place at the end of the run
(MOMENT_COPIES of them: one); the few-sample buffer (at most d / 2 rows in the activations' dtype: 2 d^2
bytes for float32, FEW_BYTES) and what the analyses hold per column of width, `column_bytes` (the class sums
of C classes 8 C; Analysis.column_bytes: a nearest-neighbour reservoir of R float64 rows 8 R). While a
layer's eigenvalues are computed it briefly needs EIGEN_COPIES more d x d float64 matrices (LAPACK's copy in
eigvalsh; a probe's solve copies m2 once, at another time), one layer at a time: counted once per group, for
its widest layer. Measured: four 3072-wide layers peaked 1.27 copies of 8 d^2 per layer above the start (1
held + 1 transient of one layer over 4). Every pass is exact, so more groups cost time (one more pass over
the data), never accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MOMENT_COPIES = 1
# Bytes per d^2 of the few-sample buffer: d / 2 rows of float32 activations (float64 models hold twice that).
FEW_BYTES = 2
EIGEN_COPIES = 1
# The default budget: this share of the memory the kernel reports available when the run starts.
DEFAULT_SHARE = 0.5
# When /proc/meminfo cannot be read (not Linux).
FALLBACK_BUDGET = 4 << 30

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30}
_UNITS["ti"] = 1 << 40
_SIZE = re.compile(r"^\s*(?P<number>\d+(\.\d*)?|\.\d+)\s*(?P<unit>[kmgt]i?)?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of '600MB', '2GiB', '1.5G' or '1000000' (K/M/G/T = powers of 1000, KiB/MiB/GiB/TiB of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 600MB, 2GiB, 1.5G)")
    size = int(float(match["number"]) * _UNITS[(match["unit"] or "").lower()])
    if size <= 0:
        raise ValueError(f"a memory budget must be positive, got {text!r}")
    return size


def format_size(size: float) -> str:
    """A byte count for a header: 1.5 GiB, 600.0 MiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes, or None when the kernel does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_budget() -> int:
    """DEFAULT_SHARE of the available memory (FALLBACK_BUDGET when unknown)."""
    available = available_memory()
    return FALLBACK_BUDGET if available is None else int(DEFAULT_SHARE * available)


def layer_bytes(width: int, column_bytes: int = 0) -> int:
    """What one layer of width d holds during a pass (module docstring)."""
    d = int(width)
    return MOMENT_COPIES * 8 * (d + 1) ** 2 + FEW_BYTES * d * d + int(column_bytes) * d


def eigen_bytes(width: int) -> int:
    """The extra d x d float64 matrices of one layer's eigendecomposition."""
    return EIGEN_COPIES * 8 * int(width) ** 2


def group_bytes(widths: Sequence[int], column_bytes: int = 0) -> int:
    """Peak bytes of one pass tracking layers of these widths."""
    if not widths:
        return 0
    return sum(layer_bytes(w, column_bytes) for w in widths) + eigen_bytes(max(widths))


@dataclass(frozen=True)
class Plan:
    """The layer groups (each one pass, layers in forward order), the budget and what one pass would need."""

    groups: tuple[tuple[str, ...], ...]
    budget: int
    needed: int
    over: tuple[str, ...] = ()

    @property
    def passes(self) -> int:
        return len(self.groups)

    def describe(self) -> str:
        """One line for the header: the number of passes and why."""
        budget = format_size(self.budget)
        if self.passes == 1:
            return f"1 pass (moments {format_size(self.needed)} within the memory budget {budget})"
        text = f"{self.passes} passes over the data: the moments of all layers need {format_size(self.needed)}"
        text += f", more than the memory budget {budget}"
        if self.over:
            text += f"; {len(self.over)} layer(s) exceed it alone and get a pass each ({', '.join(self.over[:3])})"
        return text


def plan_groups(layers: Sequence[tuple[str, int]], budget: int, column_bytes: int = 0) -> Plan:
    """Groups of (name, width) layers whose passes each fit `budget` bytes, as few as first-fit decreasing
    finds; each group lists its layers in the order given. A layer that alone exceeds the budget is a group
    of its own (named in `over`)."""
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    needed = group_bytes([w for _, w in layers], column_bytes)
    if needed <= budget:
        return Plan((tuple(name for name, _ in layers),), budget, needed)
    order = {name: index for index, (name, _) in enumerate(layers)}
    bins: list[list[tuple[str, int]]] = []
    over: list[str] = []
    for name, width in sorted(layers, key=lambda item: (-item[1], order[item[0]])):
        if group_bytes([width], column_bytes) > budget:
            over.append(name)
            bins.append([(name, width)])
            continue
        for members in bins:
            joined = [w for _, w in [*members, (name, width)]]
            if members[0][0] not in over and group_bytes(joined, column_bytes) <= budget:
                members.append((name, width))
                break
        else:
            bins.append([(name, width)])
    groups = [tuple(sorted((n for n, _ in members), key=order.__getitem__)) for members in bins]
    groups.sort(key=lambda group: order[group[0]])  # the pass with the model's first layer goes first
    over.sort(key=order.__getitem__)
    return Plan(tuple(groups), budget, needed, tuple(over))


def split_layers(layers: Sequence[tuple[str, int]], parts: int, column_bytes: int = 0) -> tuple[tuple[str, ...], ...]:
    """`layers` dealt to `parts` processes with about equal moment memory each (largest first, to the part
    holding least); each part lists its layers in the order given. Every part gets at least one layer."""
    if parts < 1 or parts > len(layers):
        raise ValueError(f"cannot split {len(layers)} layer(s) over {parts} part(s): give at most one part per layer")
    order = {name: index for index, (name, _) in enumerate(layers)}
    loads = [0] * parts
    shares: list[list[str]] = [[] for _ in range(parts)]
    for name, width in sorted(layers, key=lambda item: (-item[1], order[item[0]])):
        # The least loaded part; among equals the one with fewest layers, so every part gets one.
        target = min(range(parts), key=lambda p: (loads[p], len(shares[p]), p))
        loads[target] += layer_bytes(width, column_bytes)
        shares[target].append(name)
    return tuple(tuple(sorted(share, key=order.__getitem__)) for share in shares)
