"""Inputs resized to another spatial size before the model: the resolution sweep (docs/method.md, receptive field).

Bilinear with antialiasing, torchvision.transforms.v2.functional.resize's defaults. Resizing after the
per-channel normalisation gives the same tensors as before it: the filter's weights sum to one, so it
commutes with x -> (x - mean) / std.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from satcli.data.source import Batch, DataSource
from satcli.errors import SatcliError


def resize_images(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, C, *spatial) images at ``size`` (H, W), bilinear with antialiasing."""
    # Imported here: torchvision.transforms pulls in torch._dynamo (~1 s), which runs without a sweep do not need.
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2.functional import resize

    return resize(x, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)


@dataclass
class ResizedSource(DataSource):
    """A data source whose image batches are resized to ``size`` on the way out; everything else is shared."""

    size: tuple[int, ...] = ()

    def iter_batches(self) -> Iterator[Batch]:
        for batch in super().iter_batches():
            yield Batch(resize_images(batch.inputs, self.size), batch.labels, batch.mask)  # type: ignore[arg-type]


def resized(source: DataSource, size: Sequence[int]) -> DataSource:
    """``source`` with its (C, H, W) images resized to ``size``; refuses text and non-image inputs."""
    if source.is_text or len(source.sample_shape) != 3:
        raise SatcliError(
            f"--input-size resizes images (C, H, W); {source.description} has inputs of shape {source.sample_shape}"
        )
    fields = {f.name: getattr(source, f.name) for f in dataclasses.fields(source) if f.init}
    height, width = (int(size[0]), int(size[-1]))
    fields["description"] = f"{source.description}, resized to {height}x{width} (bilinear, antialiased)"
    fields["sample_shape"] = (source.sample_shape[0], height, width)
    out = ResizedSource(**fields, size=(height, width))
    out._cache, out._batch_cache = source._cache, source._batch_cache  # decoded once, shared by every size
    return out
