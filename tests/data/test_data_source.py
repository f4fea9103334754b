"""Data options, spec dispatch, batching and subsets, on the embedded digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import all_batches

import satcli
from satcli.data import (
    DIGITS_MEAN,
    DIGITS_STD,
    DataOptions,
    default_data_root,
    open_data,
)
from satcli.data.common import _MemoryDataset
from satcli.errors import SatcliError

DIGITS_NPZ = Path(satcli.__file__).parent / "datasets" / "digits.npz"


# ---------------------------------------------------------------------------------------------------------
# options, root, unknown specs


def test_default_data_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SATCLI_DATA_ROOT", str(tmp_path / "d"))
    assert default_data_root() == tmp_path / "d"
    monkeypatch.delenv("SATCLI_DATA_ROOT")
    assert default_data_root() == Path.home() / ".cache" / "satcli" / "data"


def test_unknown_spec_lists_accepted_specs() -> None:
    with pytest.raises(SatcliError, match=r"unknown data spec 'imagenet'.*digits, cifar10, cifar100.*folder:PATH"):
        open_data("imagenet", DataOptions())


def test_directory_without_folder_prefix_hints(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="use folder:"):
        open_data(str(tmp_path), DataOptions())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DataOptions(batch_size=0), "batch size"),
        (DataOptions(max_samples=0), "number of samples"),
        (DataOptions(max_samples=-3), "number of samples"),
        (DataOptions(workers=-1), "workers"),
        (DataOptions(image_size=0), "image size"),
    ],
)
def test_bad_options_are_rejected(options: DataOptions, message: str) -> None:
    with pytest.raises(SatcliError, match=message):
        open_data("digits", options)


# ---------------------------------------------------------------------------------------------------------
# digits


def test_digits_normalization_constants_match_train_split() -> None:
    with np.load(DIGITS_NPZ) as arrays:
        train = arrays["images"][arrays["split"] == 0].astype(np.float64) / 16.0
    assert train.shape[0] == 1198
    assert pytest.approx(train.mean(), rel=1e-9) == DIGITS_MEAN
    assert pytest.approx(train.std(), rel=1e-9) == DIGITS_STD


@pytest.mark.parametrize(("split", "code", "count"), [("test", 1, 599), ("train", 0, 1198), ("all", None, 1797)])
def test_digits_splits_values_and_labels(split: str, code: int | None, count: int) -> None:
    source = open_data("digits", DataOptions(split=split))
    with np.load(DIGITS_NPZ) as arrays:
        keep = np.ones(1797, bool) if code is None else arrays["split"] == code
        images, labels = arrays["images"][keep], arrays["labels"][keep]
    assert source.num_samples == count
    assert source.description == f"digits ({split}, {count} samples)"
    assert source.sample_shape == (1, 8, 8)
    assert source.has_labels
    x, y = all_batches(source)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (count, 1, 8, 8)
    expected = (images.astype(np.float64)[:, None] / 16.0 - DIGITS_MEAN) / DIGITS_STD
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), labels)
    item_x, item_y = source.dataset[0]
    assert item_x.shape == (1, 8, 8) and item_y.shape == () and item_y.dtype == torch.int64


def test_digits_bad_split_lists_valid_splits() -> None:
    with pytest.raises(SatcliError, match="valid splits: train, test, all"):
        open_data("digits", DataOptions(split="val"))


def test_digits_image_size_resizes_bilinearly() -> None:
    source = open_data("digits", DataOptions(image_size=16, max_samples=20))
    assert source.sample_shape == (1, 16, 16)
    assert source.description.endswith("resized to 16x16)")
    x, _ = all_batches(source)
    small, _ = all_batches(open_data("digits", DataOptions(max_samples=20)))
    raw = small * DIGITS_STD + DIGITS_MEAN
    expected = F.interpolate(raw, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x, (expected - DIGITS_MEAN) / DIGITS_STD, atol=1e-5, rtol=0)


def test_max_samples_is_a_reproducible_sorted_random_subset() -> None:
    first = open_data("digits", DataOptions(max_samples=50, seed=0))
    again = open_data("digits", DataOptions(max_samples=50, seed=0))
    other = open_data("digits", DataOptions(max_samples=50, seed=1))
    assert first.num_samples == 50
    assert first.description == "digits (test, 50 of 599 samples, seed 0)"
    x0, y0 = all_batches(first)
    x1, y1 = all_batches(again)
    x2, _ = all_batches(other)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert not torch.equal(x0, x2)
    # The subset is the sorted head of the seeded permutation, so it keeps data set order.
    indices = sorted(torch.randperm(599, generator=torch.Generator().manual_seed(0))[:50].tolist())
    full_x, _ = all_batches(open_data("digits", DataOptions()))
    assert torch.equal(x0, full_x[indices])


def test_max_samples_above_size_keeps_everything() -> None:
    source = open_data("digits", DataOptions(max_samples=10_000))
    assert source.num_samples == 599
    assert source.description == "digits (test, 599 samples)"


def test_batches_have_batch_size_and_materialize_gives_identical_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    source = open_data("digits", DataOptions(batch_size=100, max_samples=250))
    before = list(source.batches())
    assert [len(x) for x, _ in before] == [100, 100, 50]
    assert all(isinstance(batch, tuple) for batch in before)
    source.materialize()

    def no_decoding(self: object, index: int) -> None:
        raise AssertionError("decoded again after materialize()")

    monkeypatch.setattr(_MemoryDataset, "__getitem__", no_decoding)
    after = list(source.batches())
    assert len(before) == len(after)
    for (bx, by), (ax, ay) in zip(before, after, strict=True):
        assert torch.equal(bx, ax) and torch.equal(by, ay)
    # Batches are copies: editing one in place leaves the cache intact.
    after[0][0].zero_()
    assert torch.equal(next(source.batches())[0], before[0][0])


def test_worker_processes_give_the_same_batches() -> None:
    options = DataOptions(max_samples=40, batch_size=16)
    single = all_batches(open_data("digits", options))
    parallel = all_batches(open_data("digits", DataOptions(max_samples=40, batch_size=16, workers=1)))
    assert torch.equal(single[0], parallel[0]) and torch.equal(single[1], parallel[1])
