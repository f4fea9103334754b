"""Machinery shared by the data readers: per-item transform, in-memory data set, subset and description."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from satcli.data.source import DataOptions, DataSource, default_data_root
from satcli.errors import SatcliError

# Per-channel (mean, std) of each training set scaled to [0, 1], the values the usual training recipes use:
# CIFAR-10 / CIFAR-100 per-pixel statistics of the 50,000 training images (e.g. Stevens, Antiga & Viehmann,
# "Deep Learning with PyTorch", ch. 7); MNIST 0.1307 / 0.3081 from pytorch/examples mnist/main.py;
# Fashion-MNIST 0.2860 / 0.3530 and SVHN as tabulated by chatflip/CalculationMeanStd and PatrickZH/DeepCore;
# ImageNet from the torchvision model documentation (used for folder:PATH).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class _ImageTransform:
    """Cast to float32, scale raw values to [0, 1], optionally resize to SxS, then normalize per channel.

    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(
        self,
        scale: float,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        size: int | None = None,
    ) -> None:
        self.scale = scale
        self.size = size
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.scale != 1.0:
            x = x / self.scale
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            # antialias only matters when shrinking, where plain bilinear would alias.
            x = F.interpolate(
                x.unsqueeze(0), size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            ).squeeze(0)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x.contiguous()


class _MemoryDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Raw samples held in memory (uint8 images or float32 arrays), transformed one item at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.x = x
        self.y = y
        self.transform = transform

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[index]), self.y[index]


def _subset_indices(total: int, options: DataOptions) -> list[int] | None:
    """The sorted fixed-seed random subset --max-samples asks for, or None to keep everything."""
    if options.max_samples is None or options.max_samples >= total:
        return None
    generator = torch.Generator().manual_seed(options.seed)
    chosen = torch.randperm(total, generator=generator)[: options.max_samples]
    return sorted(chosen.tolist())


def _describe(name: str, details: Sequence[str], total: int, kept: int, options: DataOptions) -> str:
    parts = list(details)
    if kept == total:
        parts.append(f"{kept} samples")
    else:
        parts.append(f"{kept} of {total} samples, seed {options.seed}")
    if options.image_size is not None:
        parts.append(f"resized to {options.image_size}x{options.image_size}")
    return f"{name} ({', '.join(parts)})"


def _memory_source(
    spec: str,
    name: str,
    details: Sequence[str],
    x: torch.Tensor,
    y: torch.Tensor | None,
    transform: Callable[[torch.Tensor], torch.Tensor],
    options: DataOptions,
) -> DataSource:
    """Wrap in-memory raw samples (first axis = sample) into a DataSource, applying --max-samples."""
    total = int(x.shape[0])
    if total == 0:
        raise SatcliError(f"{name} holds no samples")
    has_labels = y is not None
    labels = torch.full((total,), -1, dtype=torch.int64) if y is None else y.to(torch.int64)
    indices = _subset_indices(total, options)
    if indices is not None:
        index = torch.tensor(indices, dtype=torch.int64)
        x, labels = x.index_select(0, index), labels.index_select(0, index)
    dataset = _MemoryDataset(x.contiguous(), labels.contiguous(), transform)
    return DataSource(
        spec=spec,
        description=_describe(name, details, total, len(dataset), options),
        dataset=dataset,
        num_samples=len(dataset),
        sample_shape=tuple(dataset[0][0].shape),
        has_labels=has_labels,
        options=options,
    )


def _data_root(options: DataOptions) -> Path:
    return (options.root if options.root is not None else default_data_root()).expanduser()


def _download(title: str, fetch: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Run a torchvision download helper, turning network and checksum failures into one-line errors."""
    try:
        fetch(*args, **kwargs)
    except Exception as exc:
        raise SatcliError(f"downloading {title} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message folded onto one line and cut to a readable length."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
