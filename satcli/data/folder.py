"""folder:PATH image trees in the ImageFolder layout (CLASS/IMAGE files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from satcli.data.common import NORMALIZATION, _describe, _ImageTransform, _one_line, _subset_indices
from satcli.data.source import DataOptions, DataSource, _check_split
from satcli.errors import DataError, SatcliError


class _FolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(image path, class index) pairs decoded to RGB on access."""

    def __init__(self, samples: list[tuple[str, int]], transform: _ImageTransform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.samples[index]
        return self.transform(_load_rgb(path)), torch.tensor(label, dtype=torch.int64)


def _load_rgb(path: str) -> torch.Tensor:
    """One image file as a (3, H, W) uint8 tensor."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.array(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {_one_line(exc)}") from exc
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {_one_line(exc)}") from exc


def _open_folder(spec: str, folder_text: str, options: DataOptions) -> DataSource:
    if not folder_text.strip():
        raise SatcliError("folder: needs a path, e.g. folder:./images")
    folder = Path(folder_text.strip()).expanduser()
    name = f"folder:{folder}"
    _check_split(name, options.split, (DataOptions.split,))
    if not folder.is_dir():
        raise SatcliError(f"image folder not found: {folder}")
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder), loader=_load_rgb)
    except FileNotFoundError as exc:
        raise SatcliError(
            f"no images in {folder}: expected {folder}/CLASS/IMAGE files (.png, .jpg, ...) ({_one_line(exc)})"
        ) from exc
    samples: list[tuple[str, int]] = [(str(path), int(label)) for path, label in found.samples]
    total = len(samples)
    indices = _subset_indices(total, options)
    if indices is not None:
        samples = [samples[i] for i in indices]
    if options.image_size is None:
        # Checked up front: a batch of mixed sizes cannot be stacked, and failing mid-run wastes the run.
        first_size = _image_size(samples[0][0])
        for path, _ in samples[1:]:
            size = _image_size(path)
            if size != first_size:
                raise SatcliError(
                    f"images in {folder} differ in size ({samples[0][0]} is {first_size[0]}x{first_size[1]}, "
                    f"{path} is {size[0]}x{size[1]}); pass --image-size to resize them"
                )
    mean, std = NORMALIZATION["imagenet"]
    dataset = _FolderDataset(samples, _ImageTransform(255.0, mean, std, options.image_size))
    return DataSource(
        spec=spec,
        description=_describe(name, [f"{len(found.classes)} classes"], total, len(dataset), options),
        dataset=dataset,
        num_samples=len(dataset),
        sample_shape=tuple(dataset[0][0].shape),
        has_labels=True,
        options=options,
    )
