"""A rank of the Monitor.sync test: its half of the batches, then checkpoint() (merged; rank 0 writes)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import satcli


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3)).eval()


def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(25, 6, generator=g) * 2 + 1 for _ in range(4)]


def run(rank: int, world: int, init_file: str, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = model()
        with satcli.Monitor(net, store=Path(store)) as monitor, torch.no_grad():
            for x in batches()[rank::world]:
                net(x)
        result = monitor.checkpoint(step=0)
        assert (result is None) == (rank != 0)
    finally:
        dist.destroy_process_group()
