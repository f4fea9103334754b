"""Train the sample models on the embedded digits set and save them (run: ``python sample_models/train.py``).

Deterministic: fixed seeds, deterministic algorithms and one CPU thread, so a re-run reproduces the
committed checkpoints and ``metrics.json``. Takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere: make sample_models/satcli importable
    sys.path.insert(0, str(HERE.parent))

from sample_models.architectures import FACTORIES, INPUT_SHAPE  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """How one sample model is trained."""

    epochs: int
    lr: float
    batch_size: int = 32
    weight_decay: float = 0.0


RECIPES: dict[str, Recipe] = {
    "narrow": Recipe(epochs=60, lr=3e-3),
    "deep_wide": Recipe(epochs=30, lr=1e-3),
    "sensible": Recipe(epochs=60, lr=3e-3),
}
SEED = 0


def load_split(split: str) -> Dataset:
    """The digits dataset for one split, prepared by satcli's own data module."""
    from satcli.data import DataOptions, open_data

    return open_data("digits", DataOptions(split=split)).dataset


def stack(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All (x, y) items of a small dataset as two tensors."""
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys, dtype=torch.int64)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    return float((model(x).argmax(dim=1) == y).double().mean()) * 100.0


def train(
    name: str, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, start: nn.Module | None = None, seed: int = SEED
) -> nn.Module:
    """Build a model from its factory (or continue `start`) and train it with Adam and cross-entropy."""
    torch.manual_seed(seed)
    model = FACTORIES[name]() if start is None else start
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    pairs = list(zip(x, y, strict=True))
    loader = DataLoader(pairs, batch_size=recipe.batch_size, shuffle=True, generator=gen)
    for _ in range(recipe.epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    return model.eval()


def save(name: str, model: nn.Module, out_dir: Path) -> None:
    """Save a model as a torch.export archive with a dynamic batch dimension."""
    example = torch.zeros(2, *INPUT_SHAPE)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, out_dir / f"{name}.pt2")


def main(out_dir: Path = HERE) -> dict[str, dict[str, float | int]]:
    """Train every sample model, save the checkpoints and write metrics.json; return the metrics."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, y_train = stack(load_split("train"))
    x_test, y_test = stack(load_split("test"))
    metrics: dict[str, dict[str, float | int]] = {}
    for name, recipe in RECIPES.items():
        start = time.perf_counter()
        model = train(name, x_train, y_train, recipe)
        metrics[name] = {
            "train_accuracy": round(accuracy(model, x_train, y_train), 4),
            "test_accuracy": round(accuracy(model, x_test, y_test), 4),
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": recipe.epochs,
        }
        save(name, model, out_dir)
        if name == "sensible":
            torch.save(model.state_dict(), out_dir / "sensible_state_dict.pt")
        print(f"{name}: {metrics[name]} ({time.perf_counter() - start:.1f} s)")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


if __name__ == "__main__":
    main()
