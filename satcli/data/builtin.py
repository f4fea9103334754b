"""The UCI digits shipped in the package."""

from __future__ import annotations

import importlib.resources
import io

import numpy as np
import torch

from satcli.data.common import _ImageTransform, _memory_source
from satcli.data.source import DataOptions, DataSource, _check_split

# Mean and standard deviation over all pixels of the digits TRAIN split scaled to [0, 1]
# (tests/data/test_data_source.py recomputes them from satcli/datasets/digits.npz).
DIGITS_MEAN = 0.3050184552378965
DIGITS_STD = 0.3760207780345291

DIGITS_SPLITS = ("train", "test", "all")
# `--data digits:raw`: the pixels scaled to [0, 1] only (x / 16, as sklearn's load_digits().data / 16), for
# models trained on that scaling; plain `digits` is standardized, (x / 16 - DIGITS_MEAN) / DIGITS_STD.
DIGITS_RAW = "digits:raw"


def _open_digits(spec: str, options: DataOptions, raw: bool = False) -> DataSource:
    """The UCI digits shipped in the package: 8x8 grey images, values 0..16, scaled to [0, 1] and standardized
    with the train split's mean and std (`raw`: scaled to [0, 1] only)."""
    _check_split("digits", options.split, DIGITS_SPLITS)
    resource = importlib.resources.files("satcli").joinpath("datasets/digits.npz")
    with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as arrays:
        images, labels, split = arrays["images"], arrays["labels"], arrays["split"]
    if options.split != "all":
        keep = split == (0 if options.split == "train" else 1)
        images, labels = images[keep], labels[keep]
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    if raw:
        return _memory_source(
            spec, DIGITS_RAW, [options.split], x, y, _ImageTransform(16.0, None, None, options.image_size), options
        )
    transform = _ImageTransform(16.0, (DIGITS_MEAN,), (DIGITS_STD,), options.image_size)
    return _memory_source(spec, "digits", [options.split], x, y, transform, options)
