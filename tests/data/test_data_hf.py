"""Tables, save_to_disk folders and hf:NAME data sets: columns, labels, tokenization and image batches."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hf_helpers import write_bert, write_tokenizer

from satcli.cli.console import with_flags
from satcli.data import Batch, DataOptions, DataSource, open_data
from satcli.errors import SatcliError

datasets = pytest.importorskip("datasets")

TEXTS = ["the cat sat", "a dog ran on the mat", "good", "the bad dog sat on a mat", "a cat"]
LABELS = ["pos", "neg", "pos", "neg", "meh"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


@pytest.fixture
def tokenizer(tmp_path: Path) -> Any:
    return write_tokenizer(tmp_path / "tok")


def all_batches(source: DataSource) -> list[Batch]:
    return list(source.iter_batches())


def write_table(path: Path, columns: dict[str, list[Any]]) -> Path:
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".csv":
        datasets.Dataset.from_dict(columns).to_csv(str(path), index=False)
    else:
        datasets.Dataset.from_dict(columns).to_parquet(str(path))
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_tables_with_default_columns_and_string_labels(tmp_path: Path, tokenizer: Any, suffix: str) -> None:
    path = write_table(tmp_path / f"t{suffix}", {"text": TEXTS, "label": LABELS})
    source = open_data(str(path), DataOptions(batch_size=2, tokenizer=tokenizer))
    assert source.num_samples == 5 and source.has_labels and source.is_text
    assert source.class_names == ("meh", "neg", "pos")
    batches = all_batches(source)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    first = batches[0]
    assert isinstance(first.inputs, dict) and {"input_ids", "attention_mask"} <= set(first.inputs)
    assert first.mask is not None and first.mask.dtype == torch.bool
    assert torch.equal(first.mask, first.inputs["attention_mask"].bool())
    assert torch.equal(torch.cat([b.labels for b in batches if b.labels is not None]), torch.tensor([2, 1, 2, 1, 0]))
    # Per-batch padding: the second text is the longest of the first batch, so it has no padding.
    assert bool(first.mask[1].all()) and not bool(first.mask[0].all())


def test_explicit_columns_and_int_labels(tmp_path: Path, tokenizer: Any) -> None:
    path = write_table(tmp_path / "t.jsonl", {"sentence": TEXTS, "text": TEXTS, "y": [0, 1, 0, 1, 1]})
    options = DataOptions(input_column="sentence", label_column="y", tokenizer=tokenizer, max_length=4)
    source = open_data(str(path), options)
    (batch,) = all_batches(source)
    assert source.class_names is None
    assert torch.equal(batch.labels, torch.tensor([0, 1, 0, 1, 1]))
    assert batch.inputs["input_ids"].shape[1] == 4  # truncated to max_length


def test_missing_columns_are_named(tmp_path: Path, tokenizer: Any) -> None:
    path = write_table(tmp_path / "t.parquet", {"sentence": TEXTS, "y": [0, 1, 0, 1, 1]})
    with pytest.raises(SatcliError, match=r"has none of the input columns text, image.*: sentence, y"):
        open_data(str(path), DataOptions(tokenizer=tokenizer))
    with pytest.raises(SatcliError, match=r"has no input column 'words'; columns: sentence, y"):
        open_data(str(path), DataOptions(input_column="words", tokenizer=tokenizer))
    with pytest.raises(SatcliError, match=r"has no label column 'label'; columns: sentence, y"):
        open_data(str(path), DataOptions(input_column="sentence", label_column="label", tokenizer=tokenizer))
    unlabeled = open_data(str(path), DataOptions(input_column="sentence", tokenizer=tokenizer))
    assert not unlabeled.has_labels and all(b.labels is None for b in unlabeled.iter_batches())
    assert torch.equal(next(unlabeled.batches())[1], torch.full((5,), -1))


def test_text_needs_a_tokenizer(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", {"text": TEXTS})
    with pytest.raises(SatcliError, match="text in text needs a tokenizer"):
        open_data(str(path), DataOptions())


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_follows_the_tokenizers_side(tmp_path: Path, side: str) -> None:
    tokenizer = write_tokenizer(tmp_path / "tok", padding_side=side)
    path = write_table(tmp_path / "t.jsonl", {"text": ["a", "the cat sat on the mat"]})
    (batch,) = all_batches(open_data(str(path), DataOptions(tokenizer=tokenizer)))
    short = batch.mask[0]
    assert not bool(short.all())
    pad_at = 0 if side == "left" else -1
    assert not bool(short[pad_at]) and batch.inputs["input_ids"][0, pad_at] == tokenizer.pad_token_id


def test_tokenizer_from_a_model_directory_path(tmp_path: Path) -> None:
    write_bert(tmp_path / "bert")
    path = write_table(tmp_path / "t.parquet", {"text": TEXTS, "label": [0, 1, 2, 0, 1]})
    source = open_data(str(path), DataOptions(tokenizer=tmp_path / "bert", batch_size=5))
    assert source.sample_shape[0] >= 3
    source.materialize()
    (batch,) = all_batches(source)
    batch.inputs["input_ids"].zero_()  # a copy: the cache stays intact
    assert int(next(source.iter_batches()).inputs["input_ids"][0, 0]) != 0


def test_pretokenized_input_ids(tmp_path: Path, tokenizer: Any) -> None:
    path = write_table(tmp_path / "t.jsonl", {"input_ids": [[2, 7, 3], [2, 7, 9, 8, 3]], "label": [0, 1]})
    (batch,) = all_batches(open_data(str(path), DataOptions(tokenizer=tokenizer)))
    assert batch.inputs["input_ids"].shape == (2, 5) and batch.mask.sum().item() == 8
    with pytest.raises(SatcliError, match="differ in length; padding them needs a tokenizer"):
        list(open_data(str(path), DataOptions()).iter_batches())


def test_saved_dataset_dict_splits_and_subset(tmp_path: Path, tokenizer: Any) -> None:
    parts = {
        "train": datasets.Dataset.from_dict({"text": TEXTS, "label": [0, 1, 0, 1, 1]}),
        "validation": datasets.Dataset.from_dict({"text": TEXTS[:3], "label": [1, 1, 0]}),
    }
    folder = tmp_path / "saved"
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    with pytest.raises(SatcliError, match=r"has no split 'test'; valid splits: train, validation"):
        open_data(str(folder), DataOptions(tokenizer=tokenizer))
    source = open_data(str(folder), DataOptions(split="validation", tokenizer=tokenizer))
    assert source.num_samples == 3
    subset = open_data(str(folder), DataOptions(split="train", tokenizer=tokenizer, max_samples=3, seed=1))
    (batch,) = all_batches(subset)
    assert subset.num_samples == 3 and "3 of 5 samples" in subset.description
    kept = [TEXTS.index(t) for t in tokenizer.batch_decode(batch.inputs["input_ids"], skip_special_tokens=True)]
    assert torch.equal(batch.labels, torch.tensor([0, 1, 0, 1, 1])[kept])


def test_saved_image_dataset_with_class_labels(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)) for _ in range(4)]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    folder = tmp_path / "images"
    datasets.Dataset.from_dict({"img": images, "label": [0, 1, 1, 0]}, features=features).save_to_disk(str(folder))
    source = open_data(str(folder), DataOptions(image_size=8))
    assert source.sample_shape == (3, 8, 8) and source.class_names == ("cat", "dog") and not source.is_text
    x, y = next(source.batches())
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and torch.equal(y, torch.tensor([0, 1, 1, 0]))


def test_hub_dataset_from_the_local_cache(tmp_path: Path, tokenizer: Any) -> None:
    repo = tmp_path / "hub" / "datasets--some-org--reviews"
    snapshot = repo / "snapshots" / ("1" * 40)
    (snapshot / "data").mkdir(parents=True)
    write_table(snapshot / "data" / "validation-00000-of-00001.parquet", {"text": TEXTS, "label": [0, 1, 0, 1, 1]})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    source = open_data("hf:some-org/reviews:validation", DataOptions(tokenizer=tokenizer))
    assert source.num_samples == 5 and source.has_labels


def test_hub_dataset_missing_from_cache_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SatcliError) as caught:
        open_data("hf:some-org/nothing-here", DataOptions())
    message = str(caught.value)
    assert "\n" not in message and "data set some-org/nothing-here is not in the local Hugging Face cache" in message
    assert "hf download --repo-type dataset some-org/nothing-here" in message
    assert with_flags(message).endswith("or pass --download")  # the command line names its flag


def test_without_datasets_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_table(tmp_path / "t.csv", {"text": TEXTS})
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SatcliError, match=r"needs the 'hf' extra .*pip install 'satcli\[hf\]'"):
        open_data(str(path), DataOptions())


def test_bad_labels_are_errors(tmp_path: Path, tokenizer: Any) -> None:
    path = write_table(tmp_path / "f.jsonl", {"text": TEXTS[:2], "label": [0.5, 1.0]})
    with pytest.raises(SatcliError, match="label column 'label' holds non-integer values"):
        open_data(str(path), DataOptions(tokenizer=tokenizer))
    hidden = write_table(tmp_path / "h.jsonl", {"text": TEXTS[:2], "label": [-1, -1]})
    assert not open_data(str(hidden), DataOptions(tokenizer=tokenizer)).has_labels


def test_worker_processes_give_the_same_text_batches(tmp_path: Path, tokenizer: Any) -> None:
    path = write_table(tmp_path / "t.parquet", {"text": TEXTS, "label": LABELS})
    single = all_batches(open_data(str(path), DataOptions(tokenizer=tokenizer, batch_size=2)))
    parallel = all_batches(open_data(str(path), DataOptions(tokenizer=tokenizer, batch_size=2, workers=1)))
    for one, other in zip(single, parallel, strict=True):
        assert isinstance(one.inputs, dict) and isinstance(other.inputs, dict)
        assert torch.equal(one.inputs["input_ids"], other.inputs["input_ids"])
        assert one.labels is not None and other.labels is not None and torch.equal(one.labels, other.labels)


def test_images_go_through_an_image_processor(tmp_path: Path) -> None:
    from PIL import Image
    from transformers import ViTImageProcessor

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (5 + i, 7, 3), dtype=np.uint8)) for i in range(3)]
    folder = tmp_path / "images"
    datasets.Dataset.from_dict({"image": images, "label": ["b", "a", "b"]}).save_to_disk(str(folder))
    with pytest.raises(SatcliError, match=r"images differ in size .*give an image size"):
        list(open_data(str(folder), DataOptions()).iter_batches())
    processor = ViTImageProcessor(size={"height": 4, "width": 4})
    source = open_data(str(folder), DataOptions(image_processor=processor))
    (batch,) = list(source.iter_batches())
    assert isinstance(batch.inputs, torch.Tensor) and batch.inputs.shape == (3, 3, 4, 4) and batch.mask is None
    assert source.class_names == ("a", "b") and torch.equal(batch.labels, torch.tensor([1, 0, 1]))
