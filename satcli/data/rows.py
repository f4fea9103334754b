"""A DataSource over the rows of a `datasets.Dataset`: pick columns, code labels, choose how to collate.

Shared by saved `datasets` folders, `hf:NAME[:SPLIT]` and .parquet / .jsonl / .csv tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from satcli.data.collate import DEFAULT_MAX_LENGTH, ArrayCollate, ImageCollate, Row, TextCollate, TokenIdsCollate
from satcli.data.common import _describe, _subset_indices
from satcli.data.source import Batch, DataOptions, DataSource
from satcli.data.tokens import check_known_words, check_vocabulary, with_padding
from satcli.errors import SatcliError

INPUT_COLUMNS = ("text", "image", "img", "pixel_values", "input_ids")
LABEL_COLUMNS = ("label", "labels")


class RowDataset(Dataset[Row]):
    """(input values, label) rows of a datasets.Dataset; labels -1 when unlabeled. Fetches batches at once."""

    def __init__(self, table: Any, columns: Sequence[str], labels: torch.Tensor) -> None:
        self.table = table
        self.columns = list(columns)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Row:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[Row]:
        chunk = self.table[list(indices)]
        return [
            ({column: chunk[column][i] for column in self.columns}, int(self.labels[index]))
            for i, index in enumerate(indices)
        ]


def open_rows(spec: str, name: str, table: Any, options: DataOptions, details: Sequence[str]) -> DataSource:
    """A DataSource over a datasets.Dataset, applying the column, label, tokenizer and subset options."""
    columns = list(table.column_names)
    total = len(table)
    if total == 0:
        raise SatcliError(f"{name} holds no rows")
    inputs = _input_columns(name, columns, options.input_column)
    label_column = _label_column(name, columns, options.label_column)
    labels, class_names = None, None
    if label_column is not None:
        labels, class_names = encode_labels(name, label_column, table.features[label_column], list(table[label_column]))
    indices = _subset_indices(total, options)
    if indices is not None:
        table = table.select(indices)
        labels = None if labels is None else labels[torch.tensor(indices, dtype=torch.int64)]
    table = table.select_columns(inputs)
    collate, notes = _collate_for(name, table.features, inputs, options, labels is not None)
    dataset = RowDataset(table, inputs, labels if labels is not None else torch.full((len(table),), -1))
    first = collate([dataset[0]])
    if isinstance(collate, TextCollate):
        probe = collate(dataset.__getitems__(list(range(min(len(dataset), options.batch_size)))))
        check_known_words(name, collate.tokenizer, probe.inputs)  # type: ignore[arg-type]
    parts = [*details, f"input {','.join(inputs)}", *notes]
    if label_column is not None and labels is not None:
        parts.append(f"labels {label_column}")
    return DataSource(
        spec=spec,
        description=_describe(name, parts, total, len(dataset), options),
        dataset=dataset,
        num_samples=len(dataset),
        sample_shape=_sample_shape(first),
        has_labels=labels is not None,
        options=options,
        collate=collate,
        class_names=class_names,
        is_text=isinstance(first.inputs, dict),
        notes=tuple(f"{name}: {note}" for note in notes),
    )


def encode_labels(
    name: str, column: str, feature: Any, values: list[Any]
) -> tuple[torch.Tensor | None, tuple[str, ...] | None]:
    """(N,) int64 class indices and the class names when known; None labels when every row is -1.

    Ints stay ints (ClassLabel names are kept); strings become indices into their sorted vocabulary.
    """
    if any(value is None for value in values):
        raise SatcliError(f"{name}: label column {column!r} has empty values")
    names = getattr(feature, "names", None)
    if values and all(isinstance(value, str) for value in values):
        vocabulary = sorted(set(values))
        codes = {label: index for index, label in enumerate(vocabulary)}
        return torch.tensor([codes[value] for value in values], dtype=torch.int64), tuple(vocabulary)
    if not all(isinstance(value, (int, float)) and not isinstance(value, complex) for value in values):
        kinds = sorted({type(value).__name__ for value in values})
        raise SatcliError(f"{name}: label column {column!r} holds {', '.join(kinds)}; expected one class per row")
    labels = torch.tensor(values, dtype=torch.float64)
    if not bool(torch.all(labels == labels.round())):
        raise SatcliError(f"{name}: label column {column!r} holds non-integer values; expected class indices")
    labels = labels.to(torch.int64)
    if bool(torch.all(labels == -1)):
        return None, None  # e.g. the hidden labels of GLUE test splits
    return labels, tuple(names) if names else None


def _input_columns(name: str, columns: list[str], wanted: str | None) -> list[str]:
    if wanted is None:
        for column in INPUT_COLUMNS:
            if column in columns:
                return [column]
        raise SatcliError(
            f"{name} has none of the input columns {', '.join(INPUT_COLUMNS)}; name one of: {', '.join(columns)}"
        )
    chosen = [part.strip() for part in wanted.split(",") if part.strip()]
    missing = [column for column in chosen if column not in columns]
    if missing or not 1 <= len(chosen) <= 2:
        raise SatcliError(f"{name} has no input column {wanted!r}; columns: {', '.join(columns)}")
    return chosen


def _label_column(name: str, columns: list[str], wanted: str | None) -> str | None:
    if wanted is None:
        return next((column for column in LABEL_COLUMNS if column in columns), None)
    if wanted not in columns:
        raise SatcliError(f"{name} has no label column {wanted!r}; columns: {', '.join(columns)}")
    return wanted


def _collate_for(
    name: str, features: Any, inputs: list[str], options: DataOptions, labelled: bool
) -> tuple[Any, list[str]]:
    """The collate for the input column(s), and notes on how it prepares them (for the data description)."""
    import datasets

    kinds = [_kind(features[column], column, datasets) for column in inputs]
    if len(inputs) == 2 and kinds != ["text", "text"]:
        raise SatcliError(f"{name}: two input columns must both hold text, found {' and '.join(kinds)}")
    kind, column = kinds[0], inputs[0]
    if kind == "text":
        tokenizer, notes = _padding_tokenizer(name, column, options)
        return TextCollate(name, inputs, tokenizer, _max_length(tokenizer, options), labelled), notes
    if kind == "tokens":
        tokenizer, notes = (None, []) if options.tokenizer is None else _padding_tokenizer(name, column, options)
        return TokenIdsCollate(name, column, tokenizer, options.max_length, labelled), notes
    if kind == "image":
        return ImageCollate(name, column, _image_processor(options), options.image_size, labelled), []
    return ArrayCollate(name, column, labelled), []


def _kind(feature: Any, column: str, datasets: Any) -> str:
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return "text"
    if column == "input_ids":
        return "tokens"
    if isinstance(feature, dict) and {"bytes", "path"} <= set(feature):
        return "image"  # an image struct written without the datasets metadata
    return "array"


def _padding_tokenizer(name: str, column: str, options: DataOptions) -> tuple[Any, list[str]]:
    """The tokenizer, checked against the model's vocabulary and able to pad, and a note when it pads with eos."""
    tokenizer = _tokenizer(name, column, options)
    check_vocabulary(name, tokenizer, options.vocab_size)
    tokenizer, note = with_padding(name, tokenizer)
    return tokenizer, [note] if note else []


def _tokenizer(name: str, column: str, options: DataOptions) -> Any:
    if options.tokenizer is None:
        raise SatcliError(
            f"{name}: text in {column} needs a tokenizer and the model has none; pass a tokenizer folder with "
            "--tokenizer PATH"
        )
    if isinstance(options.tokenizer, (str, bytes)) or hasattr(options.tokenizer, "__fspath__"):
        from satcli.models.hf import load_tokenizer

        return load_tokenizer(options.tokenizer, trust_remote_code=options.trust_remote_code)
    return options.tokenizer


def _image_processor(options: DataOptions) -> Any:
    processor = options.image_processor
    if isinstance(processor, (str, bytes)) or hasattr(processor, "__fspath__"):
        from satcli.models.hf import load_image_processor

        return load_image_processor(processor, trust_remote_code=options.trust_remote_code)
    return processor


def _max_length(tokenizer: Any, options: DataOptions) -> int:
    if options.max_length is not None:
        return options.max_length
    limit = getattr(tokenizer, "model_max_length", None)
    return min(limit, DEFAULT_MAX_LENGTH) if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_LENGTH


def _sample_shape(batch: Batch) -> tuple[int, ...]:
    main = batch.inputs["input_ids"] if isinstance(batch.inputs, dict) else batch.inputs
    return tuple(main.shape[1:])
