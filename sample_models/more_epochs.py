"""Train a copy of the sensible sample model a few more epochs (run: ``python sample_models/more_epochs.py``).

Starts from the committed ``sensible_state_dict.pt`` (the weights of ``sensible.pt2``), trains it EPOCHS more
epochs on the digits train split with a fresh Adam, and saves ``sensible_more.pt2``: the pair that docs/cli.md
compares with ``satcli similarity``. Deterministic like train.py (fixed seed, one CPU thread); a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere: make sample_models/satcli importable
    sys.path.insert(0, str(HERE.parent))

from sample_models.architectures import FACTORIES  # noqa: E402
from sample_models.train import RECIPES, SEED, Recipe, accuracy, load_split, save, stack, train  # noqa: E402

EPOCHS = 5


def main(out_dir: Path = HERE, epochs: int = EPOCHS) -> None:
    """Load sensible's weights, train `epochs` more epochs, save sensible_more.pt2 and print the accuracies."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, y_train = stack(load_split("train"))
    x_test, y_test = stack(load_split("test"))
    start = FACTORIES["sensible"]()
    start.load_state_dict(torch.load(HERE / "sensible_state_dict.pt", weights_only=True))
    recipe = Recipe(epochs=epochs, lr=RECIPES["sensible"].lr)
    model = train("sensible", x_train, y_train, recipe, start=start, seed=SEED + 1)
    save("sensible_more", model, out_dir)
    print(
        f"sensible_more: {epochs} more epochs, train {accuracy(model, x_train, y_train):.2f}%, "
        f"test {accuracy(model, x_test, y_test):.2f}%"
    )


if __name__ == "__main__":
    main()
