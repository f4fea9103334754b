"""Save a training trajectory: one checkpoint per chosen epoch, for `satcli analyze epoch_*.pt2 --trajectory`.

    python sample_models/trajectory.py OUT_DIR [--model deep_wide] [--epochs 0,1,2,4,8,16,30]

Trains a sample architecture exactly as train.py does (same seed, recipe and data) and saves the model after
each listed epoch as OUT_DIR/epoch_N.pt2 (epoch 0 is the untrained initialization). Nothing is committed:
the files are for trying the trajectory table and `satcli plot` on a real run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from sample_models.architectures import FACTORIES, INPUT_SHAPE  # noqa: E402
from sample_models.train import RECIPES, SEED, load_split, stack  # noqa: E402


def save(model: nn.Module, path: Path) -> None:
    """A torch.export archive with a dynamic batch dimension, as train.py saves them."""
    example = torch.zeros(2, *INPUT_SHAPE)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)


def main(out_dir: Path, name: str, epochs: list[int]) -> list[Path]:
    """Train `name` up to max(epochs) and save the listed epochs; return the paths written."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = RECIPES[name]
    x, y = stack(load_split("train"))
    torch.manual_seed(SEED)
    model = FACTORIES[name]()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(
        list(zip(x, y, strict=True)),
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )
    written = []
    for epoch in range(max(epochs) + 1):
        if epoch > 0:
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
        if epoch in epochs:
            path = out_dir / f"epoch_{epoch}.pt2"
            save(model, path)
            written.append(path)
            print(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", default="deep_wide", choices=sorted(FACTORIES))
    parser.add_argument("--epochs", default="0,1,2,4,8,16,30", help="comma-separated epochs to save")
    args = parser.parse_args()
    main(args.out_dir, args.model, sorted({int(e) for e in args.epochs.split(",")}))
