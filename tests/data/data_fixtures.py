"""Miniature data sets in the real on-disk formats, for the tests in tests/data.

Each writer puts a handful of random images where satcli.data (and torchvision) expect the real files and
returns the arrays it wrote, so tests can recompute the expected tensors with numpy.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from satcli.data import NORMALIZATION, DataSource

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def write_cifar10(root: Path, per_batch: int = 2, test: int = 5, style: str = "py3-bytes") -> dict[str, np.ndarray]:
    """cifar-10-batches-py/ under root: five training batches, a test batch and batches.meta.

    style "py2" writes the batches exactly as the originals (Python 2 pickles whose keys decode to str);
    "py3-bytes" and "py3-str" pickle with Python 3, protocol 2, with b"data"-style or "data"-style keys.
    """
    rng = np.random.default_rng(10)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[np.ndarray]] = {"train_x": [], "train_y": []}

    def dump(entry: dict[str, object]) -> bytes:
        if style == "py2":
            return py2_pickle(entry)
        if style == "py3-bytes":
            entry = {key.encode(): value for key, value in entry.items()}
        return pickle.dumps(entry, protocol=2)

    for index, name in enumerate((*CIFAR10_TRAIN_FILES, "test_batch")):
        count = test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=count)]
        entry = {
            "batch_label": f"batch {index}",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}.png" for i in range(count)],
        }
        (folder / name).write_bytes(dump(entry))
        if name == "test_batch":
            written["test_x"], written["test_y"] = [data], [np.array(labels)]
        else:
            written["train_x"].append(data)
            written["train_y"].append(np.array(labels))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(dump(meta))
    return {name: np.concatenate(parts) for name, parts in written.items()}


def py2_pickle(entry: dict[str, object]) -> bytes:
    """A dict of str, int lists and 2-D uint8 arrays pickled the way Python 2 cPickle (protocol 2) wrote
    the original CIFAR batches: str as BINSTRING, numpy.core.multiarray._reconstruct for arrays.
    """

    def string(text: str | bytes) -> bytes:
        raw = text.encode("latin-1") if isinstance(text, str) else text
        if len(raw) < 256:
            return b"U" + bytes([len(raw)]) + raw
        return b"T" + struct.pack("<i", len(raw)) + raw

    def integer(value: int) -> bytes:
        return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)

    def value(item: object) -> bytes:
        if isinstance(item, (str, bytes)):
            return string(item)
        if isinstance(item, int):
            return integer(item)
        if isinstance(item, list):
            return b"](" + b"".join(value(v) for v in item) + b"e"
        assert isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 2
        dtype = b"cnumpy\ndtype\n" + string("u1") + b"K\x00K\x01\x87R"
        dtype += b"(K\x03" + string("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string("b") + b"\x87R"
        shape = integer(item.shape[0]) + integer(item.shape[1]) + b"\x86"
        state = b"(K\x01" + shape + dtype + b"\x89" + string(item.tobytes()) + b"tb"
        return array + state

    body = b"".join(string(key) + value(item) for key, item in entry.items())
    return b"\x80\x02}(" + body + b"u."


def write_cifar100(root: Path, train: int = 6, test: int = 4) -> dict[str, np.ndarray]:
    """cifar-100-python/{train,test,meta} under root, with fine and coarse labels as in the originals."""
    rng = np.random.default_rng(100)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, np.ndarray] = {}
    for name, count in (("train", train), ("test", test)):
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=count)]
        entry = {
            b"filenames": [f"img_{i}.png".encode() for i in range(count)],
            b"batch_label": name.encode(),
            b"fine_labels": fine,
            b"coarse_labels": [v // 5 for v in fine],
            b"data": data,
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        written[f"{name}_x"], written[f"{name}_y"] = data, np.array(fine)
    meta = {b"fine_label_names": [b"x"] * 100, b"coarse_label_names": [b"y"] * 20}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file: big-endian magic (0, 0, type 0x08 = ubyte, number of dims), dims, then the bytes."""
    header = np.array([0x0800 + array.ndim, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, folder_name: str = "MNIST", train: int = 6, test: int = 4) -> dict[str, np.ndarray]:
    """<root>/<folder_name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte with 28x28 images."""
    rng = np.random.default_rng(28)
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written: dict[str, np.ndarray] = {}
    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        written[f"{split}_x"], written[f"{split}_y"] = images, labels.astype(np.int64)
    return written


def write_svhn(root: Path, split: str = "test", count: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """<root>/<split>_32x32.mat as in the cropped-digits format: X (32, 32, 3, N) uint8, y (N, 1), 10 = digit 0."""
    import scipy.io

    rng = np.random.default_rng(32)
    images = rng.integers(0, 256, size=(32, 32, 3, count), dtype=np.uint8)
    labels = np.array([[10], [1], [2], [10], [9], [3], [4], [5]][:count], dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": images, "y": labels})
    return images, labels


def write_png_folder(root: Path, sizes: dict[str, list[tuple[int, int]]]) -> dict[str, np.ndarray]:
    """An ImageFolder tree root/<class>/<n>.png of random RGB images of the given (width, height) sizes."""
    from PIL import Image

    rng = np.random.default_rng(7)
    written: dict[str, np.ndarray] = {}
    for label, class_sizes in sizes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for index, (width, height) in enumerate(class_sizes):
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            path = root / label / f"{index}.png"
            Image.fromarray(pixels).save(path)
            written[str(path)] = pixels
    return written


class SystemTrap:
    """Pickles to a call of os.system that would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


class OpenTrap:
    """Pickles to a call of builtins.open that would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def all_batches(source: DataSource) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of a source, concatenated."""
    xs, ys = zip(*source.batches(), strict=True)
    return torch.cat(xs), torch.cat(ys)


def normalized(images: np.ndarray, scale: float, name: str) -> np.ndarray:
    """(N, C, H, W) raw pixels normalized with a data set's per-channel constants, in float64."""
    mean, std = (np.array(v, dtype=np.float64).reshape(1, -1, 1, 1) for v in NORMALIZATION[name])
    return (images.astype(np.float64) / scale - mean) / std
