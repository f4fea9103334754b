"""Image folders and array files (.npz, .pt, .h5)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from data_fixtures import (
    SystemTrap,
    all_batches,
    normalized,
    write_png_folder,
)

from satcli.data import (
    DataOptions,
    open_data,
)
from satcli.errors import SatcliError

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
