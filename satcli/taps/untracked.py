"""Modules of a tracked type (Linear, Conv, LSTM/GRU, MultiheadAttention) that satcli cannot tap, with why.

A layer that is never measured must be named, never silently left out: TorchScript graphs hide layers inside
control flow (LSTM/GRU, TransformerEncoderLayer's fast path), and a module that is only used functionally
(its weights read by another module) never runs as a module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from satcli.taps.export import tracked_entry
from satcli.taps.layers import TRACKED, Layer, layer_kind, select

SCRIPT_REASON = "inside control flow or a fused op of the TorchScript graph, which cannot be tapped"
SCRIPT_FIX = "load the weights into the model's Python class (an architecture) instead of the TorchScript archive"
NOT_RUN_REASON = "never ran as a module in the forward pass (used functionally, or skipped by a fused fast path)"
NOT_RUN_FIX = "none if the module is unused; otherwise call it as a module in forward, not through its weights"


@dataclass(frozen=True)
class Untracked:
    """A module satcli could not measure: its path, class, why, and what would make it measurable."""

    name: str
    type: str
    reason: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"name": self.name, "type": self.type, "reason": self.reason, "fix": self.fix}


def covered_by_attention(module: nn.Module) -> set[str]:
    """out_proj of every MultiheadAttention: measured through the attention module's own first output."""
    return {
        f"{name}.out_proj" if name else "out_proj"
        for name, sub in module.named_modules()
        if isinstance(sub, nn.MultiheadAttention)
    }


def candidates(module: nn.Module | torch.jit.ScriptModule) -> list[tuple[str, str]]:
    """(path, class) of every module of a tracked type, from the module tree (TorchScript: original names)."""
    if isinstance(module, torch.fx.GraphModule):
        return _graph_candidates(module)
    found = []
    covered = covered_by_attention(module) if not isinstance(module, torch.jit.ScriptModule) else set()
    for name, sub in module.named_modules():
        if not name or name in covered:
            continue
        if isinstance(sub, torch.jit.ScriptModule):
            cls = str(getattr(sub, "original_name", ""))
            if cls in TRACKED:
                found.append((name, cls))
            continue
        kind = layer_kind(sub)
        if kind is not None:
            found.append((name, kind[0]))
    # A module nested in a tracked module (an RNN's cells, attention's projections) is measured by its parent.
    parents = [name for name, _ in found]
    return [(n, c) for n, c in found if not any(n.startswith(p + ".") for p in parents if p != n)]


def _graph_candidates(gm: torch.fx.GraphModule) -> list[tuple[str, str]]:
    """Tracked-type modules an exported graph's nodes name in their module stacks (innermost tracked one)."""
    found: dict[str, str] = {}
    for node in gm.graph.nodes:
        entry = tracked_entry(node)
        if entry is not None:
            found.setdefault(entry[1], entry[2])
    return list(found.items())


def untracked(
    module: nn.Module | torch.jit.ScriptModule,
    ran: Sequence[str],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Untracked]:
    """Selected modules of a tracked type that gave no output in the first forward pass."""
    seen = set(ran)
    script = isinstance(module, torch.jit.ScriptModule)
    layers = [Layer(name, cls, TRACKED.get(cls, "dense")) for name, cls in candidates(module) if name not in seen]
    reason, fix = (SCRIPT_REASON, SCRIPT_FIX) if script else (NOT_RUN_REASON, NOT_RUN_FIX)
    return [Untracked(layer.name, layer.type, reason, fix) for layer in select(layers, include, exclude)]
