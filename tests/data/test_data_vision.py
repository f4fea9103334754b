"""The torchvision data sets (CIFAR, MNIST, SVHN) on miniature copies written in the real on-disk formats."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    OpenTrap,
    SystemTrap,
    all_batches,
    normalized,
    write_cifar10,
    write_cifar100,
    write_mnist,
    write_svhn,
)

from satcli.data import (
    DataOptions,
    open_data,
)
from satcli.errors import SatcliError

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
        f"(extract cifar-10-python.tar.gz in {tmp_path}) or allow the download"
    )
    with pytest.raises(SatcliError) as caught:
        open_data("cifar10", DataOptions(root=tmp_path))
    assert str(caught.value) == expected
    missing = r"CIFAR-100 not found: .*cifar-100-python/\{train,test\}.*allow the download"
    with pytest.raises(SatcliError, match=missing):
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
        "(the four original files, gunzipped) or allow the download"
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
        "or allow the download"
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
