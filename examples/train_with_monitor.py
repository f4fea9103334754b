"""Watch saturation while training: a narrow and a wide MLP on the bundled digits, one checkpoint per epoch.

python examples/train_with_monitor.py        # writes narrow-training.h5 and wide-training.h5
satcli report narrow-training.h5             # per-epoch tables, then the trajectory summary
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import satcli
from satcli.data import DataOptions, open_data


def mlp(hidden: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64  # digits are 1 x 8 x 8
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def main() -> None:
    train = open_data("digits", DataOptions(split="train", batch_size=64))
    for name, hidden in (("narrow", [4, 4]), ("wide", [64, 64, 64])):
        torch.manual_seed(0)
        model = mlp(hidden)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        with satcli.Monitor(model, store=f"{name}-training.h5") as monitor:
            for epoch in range(6):
                for x, y in train.batches():
                    loss = F.cross_entropy(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                last = loss.item()
                result = monitor.checkpoint(step=epoch, loss=last)
                average = result.average_saturation if result is not None else float("nan")
                print(f"{name} epoch {epoch}: loss {last:.3f}, average saturation {average:.3f}")


if __name__ == "__main__":
    main()
