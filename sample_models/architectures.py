"""Model classes and factories for the sample checkpoints (``--arch sample_models.architectures:<name>``).

All models take digits images of shape (B, 1, 8, 8) and return 10 logits. Learnable layers are only
``Conv2d`` and ``Linear``; there is no normalization, so every tracked output is a pre-activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

NUM_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` per hidden width, then a ``Linear`` output layer."""

    def __init__(self, hidden: Sequence[int], in_features: int = 64, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, num_classes)."""
        return self.net(x)


class SmallCNN(nn.Module):
    """Three 3x3 convolutions (one 2x2 max pool), global average pooling and a two-layer head."""

    def __init__(self, c1: int = 12, c2: int = 24, c3: int = 24, hidden: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(c3, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, 10)."""
        return self.head(self.features(x))


def narrow() -> MLP:
    """Deliberately underparameterized MLP 64 -> 4 -> 4 -> 10."""
    return MLP([4, 4])


def deep_wide() -> MLP:
    """Deliberately overparameterized MLP 64 -> 128 x 8 -> 10 (its last layers form a low-saturation tail)."""
    return MLP([128] * 8)


def sensible() -> SmallCNN:
    """A small, well-sized CNN: convolutions 1 -> 12 -> 24 -> 24 channels, head 24 -> 16 -> 10."""
    return SmallCNN(c1=12, c2=24, c3=24, hidden=16)


FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "narrow": narrow,
    "deep_wide": deep_wide,
    "sensible": sensible,
}
