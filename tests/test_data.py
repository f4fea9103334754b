"""Tests for satcli.data: every spec kind on miniature data sets written in the real on-disk formats."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import (
    OpenTrap,
    SystemTrap,
    write_cifar10,
    write_cifar100,
    write_mnist,
    write_png_folder,
    write_svhn,
)

from satcli import data as satdata
from satcli.data import (
    DIGITS_MEAN,
    DIGITS_STD,
    NORMALIZATION,
    DataOptions,
    DataSource,
    default_data_root,
    open_data,
)
from satcli.errors import SatcliError

DIGITS_NPZ = Path(satdata.__file__).parent / "datasets" / "digits.npz"


def all_batches(source: DataSource) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of a source, concatenated."""
    xs, ys = zip(*source.batches(), strict=True)
    return torch.cat(xs), torch.cat(ys)


def normalized(images: np.ndarray, scale: float, name: str) -> np.ndarray:
    """(N, C, H, W) raw pixels normalized with a data set's per-channel constants, in float64."""
    mean, std = (np.array(v, dtype=np.float64).reshape(1, -1, 1, 1) for v in NORMALIZATION[name])
    return (images.astype(np.float64) / scale - mean) / std


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
        (DataOptions(batch_size=0), "--batch-size"),
        (DataOptions(max_samples=0), "--max-samples"),
        (DataOptions(max_samples=-3), "--max-samples"),
        (DataOptions(workers=-1), "--workers"),
        (DataOptions(image_size=0), "--image-size"),
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

    monkeypatch.setattr(satdata._MemoryDataset, "__getitem__", no_decoding)
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


# ---------------------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("style", ["py2", "py3-bytes", "py3-str"])
def test_cifar10_reads_batches_and_normalizes(tmp_path: Path, style: str) -> None:
    written = write_cifar10(tmp_path, per_batch=2, test=5, style=style)
    source = open_data("cifar10", DataOptions(root=tmp_path))
    assert source.num_samples == 5 and source.sample_shape == (3, 32, 32)
    assert source.description == "cifar10 (test, 5 samples)"
    x, y = all_batches(source)
    expected = normalized(written["test_x"].reshape(-1, 3, 32, 32), 255.0, "cifar10")
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), written["test_y"])

    train = open_data("cifar10", DataOptions(root=tmp_path, split="train"))
    _, train_y = all_batches(train)
    assert train.num_samples == 10
    np.testing.assert_array_equal(train_y.numpy(), written["train_y"])


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path, train=6, test=4)
    for split in ("train", "test"):
        source = open_data("cifar100", DataOptions(root=tmp_path, split=split, image_size=16))
        assert source.sample_shape == (3, 16, 16)
        x, y = all_batches(source)
        assert x.shape == (len(written[f"{split}_y"]), 3, 16, 16)
        np.testing.assert_array_equal(y.numpy(), written[f"{split}_y"])
    source = open_data("cifar100", DataOptions(root=tmp_path))
    x, _ = all_batches(source)
    expected = normalized(written["test_x"].reshape(-1, 3, 32, 32), 255.0, "cifar100")
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)


def test_cifar_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    expected = (
        f"CIFAR-10 not found: expected {folder}/{{data_batch_1..5,test_batch}} "
        f"(extract cifar-10-python.tar.gz in {tmp_path}) or pass --download"
    )
    with pytest.raises(SatcliError) as caught:
        open_data("cifar10", DataOptions(root=tmp_path))
    assert str(caught.value) == expected
    with pytest.raises(SatcliError, match=r"CIFAR-100 not found: .*cifar-100-python/\{train,test\}.*--download"):
        open_data("cifar100", DataOptions(root=tmp_path))


def test_cifar_bad_split_lists_valid_splits(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="valid splits: train, test"):
        open_data("cifar10", DataOptions(root=tmp_path, split="extra"))


@pytest.mark.parametrize("trap", [SystemTrap, OpenTrap])
@pytest.mark.parametrize("where", ["top", "labels"])
def test_booby_trapped_cifar_pickle_runs_no_code(tmp_path: Path, trap: type, where: str) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = trap(marker)
    if where == "labels":
        payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [payload]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(SatcliError, match=r"cannot read CIFAR-10 batch .*test_batch: forbidden global"):
        open_data("cifar10", DataOptions(root=tmp_path))
    assert not marker.exists()


def test_cifar_batch_with_wrong_content_is_an_error(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(SatcliError, match=r"uint8 'data' array of shape \(N, 3072\)"):
        open_data("cifar10", DataOptions(root=tmp_path))
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2))
    with pytest.raises(SatcliError, match="one label per image"):
        open_data("cifar10", DataOptions(root=tmp_path))
    batch.write_bytes(b"not a pickle")
    with pytest.raises(SatcliError, match="cannot read CIFAR-10 batch"):
        open_data("cifar10", DataOptions(root=tmp_path))


def test_cifar_download_fetches_archive_without_torchvision_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.datasets import CIFAR10, utils

    calls: list[tuple[str, str]] = []

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        calls.append((url, md5))
        write_cifar10(Path(root))

    monkeypatch.setattr(utils, "download_and_extract_archive", fake_download)
    source = open_data("cifar10", DataOptions(root=tmp_path, download=True))
    assert calls == [(CIFAR10.url, CIFAR10.tgz_md5)]
    assert source.num_samples == 5
    open_data("cifar10", DataOptions(root=tmp_path, download=True))
    assert len(calls) == 1  # present files are not fetched again


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import utils

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(SatcliError, match=r"^downloading CIFAR-10 failed: <urlopen error"):
        open_data("cifar10", DataOptions(root=tmp_path, download=True))


# ---------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST


@pytest.mark.parametrize(("spec", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_family_reads_idx_files(tmp_path: Path, spec: str, folder: str) -> None:
    written = write_mnist(tmp_path, folder, train=6, test=4)
    for split in ("train", "test"):
        source = open_data(spec, DataOptions(root=tmp_path, split=split))
        assert source.sample_shape == (1, 28, 28)
        assert source.description == f"{spec} ({split}, {len(written[f'{split}_y'])} samples)"
        x, y = all_batches(source)
        expected = normalized(written[f"{split}_x"][:, None], 255.0, spec)
        np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(y.numpy(), written[f"{split}_y"])


def test_mnist_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(SatcliError) as caught:
        open_data("mnist", DataOptions(root=tmp_path))
    raw = tmp_path / "MNIST" / "raw"
    assert str(caught.value) == (
        f"MNIST not found: expected {raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte "
        "(the four original files, gunzipped) or pass --download"
    )
    with pytest.raises(SatcliError, match=r"Fashion-MNIST not found: expected .*FashionMNIST/raw/"):
        open_data("fashion-mnist", DataOptions(root=tmp_path))


def test_mnist_download_uses_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import MNIST

    def fake_download(self: MNIST) -> None:
        write_mnist(Path(self.root), train=3, test=2)

    monkeypatch.setattr(MNIST, "download", fake_download)
    assert open_data("mnist", DataOptions(root=tmp_path, download=True)).num_samples == 2


def test_mnist_corrupt_idx_file_is_an_error(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d")
    with pytest.raises(SatcliError, match="cannot read MNIST in"):
        open_data("mnist", DataOptions(root=tmp_path))


# ---------------------------------------------------------------------------------------------------------
# SVHN


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path: Path) -> None:
    images, labels = write_svhn(tmp_path, "test", count=5)
    source = open_data("svhn", DataOptions(root=tmp_path))
    assert source.sample_shape == (3, 32, 32) and source.num_samples == 5
    x, y = all_batches(source)
    assert y.tolist() == [0, 1, 2, 0, 9]
    chw = images.transpose(3, 2, 0, 1)  # (H, W, C, N) -> (N, C, H, W)
    np.testing.assert_allclose(x.numpy(), normalized(chw, 255.0, "svhn"), atol=1e-5)
    assert labels.shape == (5, 1)


def test_svhn_extra_split_and_missing_file(tmp_path: Path) -> None:
    write_svhn(tmp_path, "extra", count=3)
    assert open_data("svhn", DataOptions(root=tmp_path, split="extra")).num_samples == 3
    with pytest.raises(SatcliError) as caught:
        open_data("svhn", DataOptions(root=tmp_path, split="train"))
    assert str(caught.value) == (
        f"SVHN not found: expected {tmp_path / 'train_32x32.mat'} (the cropped-digits train_32x32.mat) "
        "or pass --download"
    )
    with pytest.raises(SatcliError, match="valid splits: train, test, extra"):
        open_data("svhn", DataOptions(root=tmp_path, split="all"))


def test_svhn_without_scipy_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(SatcliError, match=r"^SVHN needs scipy: pip install scipy$"):
        open_data("svhn", DataOptions(root=tmp_path))


def test_svhn_unreadable_mat_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(SatcliError, match="cannot read SVHN file"):
        open_data("svhn", DataOptions(root=tmp_path))


# ---------------------------------------------------------------------------------------------------------
# folder:PATH


def test_folder_reads_rgb_with_imagenet_normalization(tmp_path: Path) -> None:
    written = write_png_folder(tmp_path / "imgs", {"cat": [(12, 10)] * 2, "dog": [(12, 10)] * 3})
    source = open_data(f"folder:{tmp_path / 'imgs'}", DataOptions(batch_size=2))
    assert source.sample_shape == (3, 10, 12) and source.num_samples == 5
    assert source.description == f"folder:{tmp_path / 'imgs'} (2 classes, 5 samples)"
    x, y = all_batches(source)
    assert y.tolist() == [0, 0, 1, 1, 1]
    pixels = np.stack([written[path] for path in sorted(written)]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x.numpy(), normalized(pixels, 255.0, "imagenet"), atol=1e-5)


def test_folder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    write_png_folder(tmp_path, {"a": [(8, 8), (16, 12)], "b": [(8, 8)]})
    with pytest.raises(SatcliError, match=r"differ in size .*8x8.*16x12.*pass --image-size"):
        open_data(f"folder:{tmp_path}", DataOptions())
    source = open_data(f"folder:{tmp_path}", DataOptions(image_size=6))
    x, y = all_batches(source)
    assert x.shape == (3, 3, 6, 6) and y.tolist() == [0, 0, 1]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="image folder not found"):
        open_data(f"folder:{tmp_path / 'nope'}", DataOptions())
    (tmp_path / "empty").mkdir()
    with pytest.raises(SatcliError, match="no images in"):
        open_data(f"folder:{tmp_path / 'empty'}", DataOptions())
    with pytest.raises(SatcliError, match="valid splits: test"):
        open_data(f"folder:{tmp_path}", DataOptions(split="train"))
    with pytest.raises(SatcliError, match="needs a path"):
        open_data("folder:", DataOptions())


def test_folder_corrupt_image_is_an_error(tmp_path: Path) -> None:
    write_png_folder(tmp_path, {"a": [(4, 4)]})
    (tmp_path / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SatcliError, match=r"cannot read image .*bad\.png"):
        open_data(f"folder:{tmp_path}", DataOptions())
    # With --image-size nothing is checked up front: the worker's error comes back as one line.
    source = open_data(f"folder:{tmp_path}", DataOptions(image_size=4, workers=1))
    with pytest.raises(SatcliError) as caught:
        list(source.batches())
    assert str(caught.value).startswith(f"cannot read image {tmp_path / 'a' / 'bad.png'}: ")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# array files


def labelled_arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(size=(7, 2, 4, 4)).astype(np.float64), rng.integers(0, 3, size=7)


def write_array_file(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    elif path.suffix == ".pt":
        torch.save({key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    else:
        with h5py.File(path, "w") as handle:
            for key, value in arrays.items():
                handle.create_dataset(key, data=value)


@pytest.mark.parametrize("name", ["a.npz", "a.pt", "a.h5", "a.hdf5"])
@pytest.mark.parametrize(("input_key", "label_key"), [("x", "y"), ("inputs", "labels"), ("data", "targets")])
def test_array_files_with_each_key_pair(tmp_path: Path, name: str, input_key: str, label_key: str) -> None:
    inputs, labels = labelled_arrays()
    path = tmp_path / name
    write_array_file(path, {input_key: inputs, label_key: labels, "other": np.zeros(2)})
    source = open_data(str(path), DataOptions(batch_size=3))
    assert source.has_labels and source.num_samples == 7 and source.sample_shape == (2, 4, 4)
    assert source.description == f"{path} ({input_key}/{label_key}, 7 samples)"
    x, y = all_batches(source)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x.numpy(), inputs, rtol=1e-6)  # used as given, no normalization
    np.testing.assert_array_equal(y.numpy(), labels)


def test_array_uint8_is_scaled_and_missing_labels_are_minus_one(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 5 * 5, dtype=np.uint8).reshape(2, 3, 5, 5)
    path = tmp_path / "u.npz"
    np.savez(path, x=images)
    source = open_data(str(path), DataOptions(image_size=10))
    assert not source.has_labels and source.sample_shape == (3, 10, 10)
    assert source.description == f"{path} (x, unlabeled, 2 samples, resized to 10x10)"
    plain = open_data(str(path), DataOptions())
    x, y = all_batches(plain)
    np.testing.assert_allclose(x.numpy(), images / 255.0, atol=1e-7)
    assert y.tolist() == [-1, -1]


def test_pt_tensor_and_tuple(tmp_path: Path) -> None:
    inputs, labels = labelled_arrays()
    torch.save(torch.from_numpy(inputs), tmp_path / "t.pt")
    source = open_data(str(tmp_path / "t.pt"), DataOptions())
    assert not source.has_labels and source.num_samples == 7
    torch.save((torch.from_numpy(inputs), torch.from_numpy(labels)), tmp_path / "p.pt")
    _, y = all_batches(open_data(str(tmp_path / "p.pt"), DataOptions()))
    np.testing.assert_array_equal(y.numpy(), labels)


def test_pt_file_is_loaded_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"x": SystemTrap(marker)}, tmp_path / "evil.pt")
    with pytest.raises(SatcliError, match=r"cannot read .*evil.pt as tensors: it holds more than tensors \(.*system"):
        open_data(str(tmp_path / "evil.pt"), DataOptions())
    assert not marker.exists()


@pytest.mark.parametrize("name", ["m.npz", "m.pt", "m.h5"])
def test_array_missing_key_names_file_and_keys(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_array_file(path, {"images": np.zeros((2, 3)), "classes": np.zeros(2)})
    with pytest.raises(SatcliError) as caught:
        open_data(str(path), DataOptions())
    message = str(caught.value)
    assert str(path) in message and "x/y, inputs/labels, data/targets" in message
    found = message.rsplit("keys found: ", 1)[1]
    assert sorted(found.split(", ")) == ["classes", "images"]


@pytest.mark.parametrize("name", ["l.npz", "l.pt", "l.h5"])
def test_array_length_mismatch(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_array_file(path, {"x": np.zeros((4, 3)), "y": np.zeros(3, dtype=np.int64)})
    with pytest.raises(SatcliError, match=r"x has 4 samples but y has 3 labels \(keys found: x, y\)"):
        open_data(str(path), DataOptions())


def test_array_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="data file not found"):
        open_data(str(tmp_path / "none.npz"), DataOptions())
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SatcliError, match=r"cannot read .*obj\.npz"):
        open_data(str(tmp_path / "obj.npz"), DataOptions())
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(SatcliError, match=r"cannot read .*bad\.h5 as an HDF5 file"):
        open_data(str(tmp_path / "bad.h5"), DataOptions())
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 5)), y=np.array([0.5, 1, 2]))
    with pytest.raises(SatcliError, match="non-integer"):
        open_data(str(tmp_path / "flat.npz"), DataOptions())
    np.savez(tmp_path / "vec.npz", x=np.zeros((3, 5)))
    with pytest.raises(SatcliError, match="--image-size needs images"):
        open_data(str(tmp_path / "vec.npz"), DataOptions(image_size=4))
    with pytest.raises(SatcliError, match="valid splits: test"):
        open_data(str(tmp_path / "vec.npz"), DataOptions(split="train"))
