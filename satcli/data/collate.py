"""Turn lists of table rows into Batches: tokenize text, pad token ids, process images, stack arrays.

Each collate is a small class rather than a closure so DataLoader workers can pickle it. Rows arrive as
(values, label) pairs: `values` maps the input column(s) to one row's raw value, `label` is an int or -1.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from satcli.data.common import NORMALIZATION, _ImageTransform
from satcli.data.source import Batch
from satcli.errors import SatcliError

Row = tuple[dict[str, Any], int]
DEFAULT_MAX_LENGTH = 512


def _labels(rows: Sequence[Row], labelled: bool) -> torch.Tensor | None:
    return torch.tensor([label for _, label in rows], dtype=torch.int64) if labelled else None


class TextCollate:
    """Tokenize one text column (or a pair of them) with padding to the longest text in the batch.

    Padding goes on the tokenizer's configured side (`tokenizer.padding_side`); texts longer than
    `max_length` tokens are truncated.
    """

    def __init__(self, name: str, columns: Sequence[str], tokenizer: Any, max_length: int, labelled: bool) -> None:
        self.name = name
        self.columns = list(columns)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.labelled = labelled

    def __call__(self, rows: Sequence[Row]) -> Batch:
        texts = [[_text(self.name, column, values.get(column)) for values, _ in rows] for column in self.columns]
        encoded = self.tokenizer(
            *texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=True,
            return_tensors="pt",
        )
        inputs = {key: value for key, value in encoded.items() if isinstance(value, torch.Tensor)}
        return Batch(inputs, _labels(rows, self.labelled), inputs["attention_mask"].bool())


class TokenIdsCollate:
    """Pre-tokenized `input_ids` rows, truncated to `max_length` and padded per batch.

    With a tokenizer, padding uses its pad token and side; without one, all rows must have the same length.
    """

    def __init__(self, name: str, column: str, tokenizer: Any, max_length: int | None, labelled: bool) -> None:
        self.name = name
        self.column = column
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.labelled = labelled

    def __call__(self, rows: Sequence[Row]) -> Batch:
        ids = [list(values[self.column] or [])[: self.max_length] for values, _ in rows]
        if self.tokenizer is not None:
            padded = self.tokenizer.pad(
                {"input_ids": ids}, padding="longest", return_attention_mask=True, return_tensors="pt"
            )
            inputs = {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}
        elif len({len(row) for row in ids}) == 1:
            tensor = torch.tensor(ids, dtype=torch.int64)
            inputs = {"input_ids": tensor, "attention_mask": torch.ones_like(tensor)}
        else:
            raise SatcliError(f"{self.name}: {self.column} rows differ in length; padding them needs a tokenizer")
        return Batch(inputs, _labels(rows, self.labelled), inputs["attention_mask"].bool())


class ImageCollate:
    """Images through a Hugging Face image processor, or the usual transform: scale to [0, 1], resize to
    `image_size` when given, and normalize RGB images with the ImageNet mean and std."""

    def __init__(self, name: str, column: str, processor: Any, image_size: int | None, labelled: bool) -> None:
        self.name = name
        self.column = column
        self.processor = processor
        self.labelled = labelled
        mean, std = NORMALIZATION["imagenet"]
        self.rgb = _ImageTransform(255.0, mean, std, image_size)
        self.grey = _ImageTransform(255.0, size=image_size)

    def __call__(self, rows: Sequence[Row]) -> Batch:
        images = [_pil(self.name, self.column, values.get(self.column)) for values, _ in rows]
        if self.processor is not None:
            try:
                pixels = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
            except Exception as exc:
                raise SatcliError(f"{self.name}: the image processor failed: {_short(exc)}") from None
            return Batch(pixels["pixel_values"].to(torch.float32), _labels(rows, self.labelled))
        tensors = [self._transform(image) for image in images]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            found = " and ".join("x".join(str(d) for d in shape) for shape in sorted(shapes)[:2])
            raise SatcliError(f"{self.name}: images differ in size ({found}); give an image size to resize them")
        return Batch(torch.stack(tensors), _labels(rows, self.labelled))

    def _transform(self, image: Any) -> torch.Tensor:
        grey = image.mode in ("1", "L", "I", "I;16", "F")
        array = np.asarray(image.convert("L" if grey else "RGB"))
        tensor = torch.from_numpy(array.copy())
        tensor = tensor.unsqueeze(0) if grey else tensor.permute(2, 0, 1)
        return (self.grey if grey else self.rgb)(tensor)


class ArrayCollate:
    """Numeric values or arrays (e.g. pixel_values) stacked into one float32 tensor; scalars become (B, 1)."""

    def __init__(self, name: str, column: str, labelled: bool) -> None:
        self.name = name
        self.column = column
        self.labelled = labelled

    def __call__(self, rows: Sequence[Row]) -> Batch:
        try:
            array = np.asarray([values[self.column] for values, _ in rows], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise SatcliError(
                f"{self.name}: {self.column} is not numeric or its rows differ in shape ({_short(exc)})"
            ) from None
        tensor = torch.from_numpy(array)
        return Batch(tensor.unsqueeze(1) if tensor.dim() == 1 else tensor, _labels(rows, self.labelled))


def _text(name: str, column: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SatcliError(f"{name}: {column} holds a {type(value).__name__} where text was expected")
    return value


def _pil(name: str, column: str, value: Any) -> Any:
    """A PIL image from a decoded image, or from the {bytes, path} struct parquet files store images as."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        try:
            source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
            image = Image.open(source)
            image.load()
            return image
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise SatcliError(f"{name}: cannot read an image in {column}: {_short(exc)}") from None
    raise SatcliError(f"{name}: {column} holds a {type(value).__name__} where an image was expected")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
