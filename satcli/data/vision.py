"""torchvision data sets under a data root: CIFAR-10/100 (restricted unpickler), MNIST, Fashion-MNIST, SVHN."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from satcli.data.common import NORMALIZATION, _data_root, _download, _ImageTransform, _memory_source, _one_line
from satcli.data.source import DataOptions, DataSource, _check_split
from satcli.errors import SatcliError

TORCHVISION_SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "mnist": ("train", "test"),
    "fashion-mnist": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str
    archive: str
    files: dict[str, tuple[str, ...]]
    listing: str
    label_key: str
    torchvision_class: str


_CIFAR = {
    "cifar10": _CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        listing="{data_batch_1..5,test_batch}",
        label_key="labels",
        torchvision_class="CIFAR10",
    ),
    "cifar100": _CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        files={"train": ("train",), "test": ("test",)},
        listing="{train,test}",
        label_key="fine_labels",
        torchvision_class="CIFAR100",
    ),
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for _codecs.encode, which protocol-2 pickles call to rebuild bytes; only latin-1 is needed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("forbidden call _codecs.encode with a non-latin-1 encoding")
    return text.encode("latin-1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled dict of numpy arrays and lists needs, under numpy 1.x and 2.x names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # older numpy has no numpy._core
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, lists, dicts and strings and nothing else.

    Every callable a pickle can invoke comes through find_class, so refusing all other globals means a
    crafted file cannot run code (os.system, eval, open, ...).
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="latin1")
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("forbidden persistent id")


def _read_cifar_batch(path: Path, layout: _CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 3072) uint8 pixels and (N,) labels of one CIFAR batch file, read without running its code."""
    try:
        with path.open("rb") as handle:
            entry = _ArrayUnpickler(handle).load()
    except Exception as exc:
        raise SatcliError(f"cannot read {layout.title} batch {path}: {_one_line(exc)}") from exc
    if not isinstance(entry, dict):
        raise SatcliError(f"{layout.title} batch {path} holds a {type(entry).__name__}, expected a dict")
    # The original files decode to str keys, files pickled under Python 3 keep bytes keys.
    fields = {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in entry.items()}
    data, labels = fields.get("data"), fields.get(layout.label_key)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise SatcliError(f"{layout.title} batch {path} has no uint8 'data' array of shape (N, 3072)")
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        label_array = np.empty(0)
    if labels is None or label_array.shape != (data.shape[0],):
        raise SatcliError(f"{layout.title} batch {path} has no {layout.label_key!r} list with one label per image")
    return data, label_array


def _open_cifar(spec: str, name: str, options: DataOptions) -> DataSource:
    layout = _CIFAR[name]
    _check_split(name, options.split, TORCHVISION_SPLITS[name])
    root = _data_root(options)
    folder = root / layout.folder
    paths = [folder / file for file in layout.files[options.split]]
    if not all(path.is_file() for path in paths):
        if not options.download:
            raise SatcliError(
                f"{layout.title} not found: expected {folder}/{layout.listing} "
                f"(extract {layout.archive} in {root}) or allow the download"
            )
        import torchvision.datasets
        from torchvision.datasets import utils

        source = getattr(torchvision.datasets, layout.torchvision_class)
        # Fetch and extract only: torchvision's own CIFAR reader would unpickle the files.
        _download(
            layout.title,
            utils.download_and_extract_archive,
            source.url,
            str(root),
            filename=source.filename,
            md5=source.tgz_md5,
        )
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise SatcliError(f"{layout.title} download did not produce {', '.join(missing)}")
    batches = [_read_cifar_batch(path, layout) for path in paths]
    data = np.concatenate([batch[0] for batch in batches])
    labels = np.concatenate([batch[1] for batch in batches])
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    mean, std = NORMALIZATION[name]
    transform = _ImageTransform(255.0, mean, std, options.image_size)
    return _memory_source(spec, name, [options.split], x, torch.from_numpy(labels), transform, options)


# ---------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: torchvision reads the raw idx files (no pickles involved)


def _open_mnist(spec: str, name: str, options: DataOptions) -> DataSource:
    _check_split(name, options.split, TORCHVISION_SPLITS[name])
    from torchvision import datasets

    source = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    title = "MNIST" if name == "mnist" else "Fashion-MNIST"
    root = _data_root(options)
    raw = root / source.__name__ / "raw"
    files = [raw / f"{part}-{kind}-ubyte" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    missing = not all(path.is_file() for path in files)
    if missing and not options.download:
        # torchvision's class wants all four files whichever split is read.
        raise SatcliError(
            f"{title} not found: expected {raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte "
            "(the four original files, gunzipped) or allow the download"
        )
    try:
        loaded = source(str(root), train=options.split == "train", download=options.download)
    except SatcliError:
        raise
    except Exception as exc:
        action = "download or read" if missing else "read"
        raise SatcliError(f"cannot {action} {title} in {raw}: {_one_line(exc)}") from exc
    images, labels = loaded.data, loaded.targets
    if images.dim() != 3 or labels.shape != (images.shape[0],):
        raise SatcliError(f"{title} in {raw}: {len(images)} images but {len(labels)} labels")
    mean, std = NORMALIZATION[name]
    transform = _ImageTransform(255.0, mean, std, options.image_size)
    return _memory_source(spec, name, [options.split], images.unsqueeze(1), labels, transform, options)


# ---------------------------------------------------------------------------------------------------------
# SVHN: cropped-digit .mat files read with scipy (torchvision's class would insist on matching md5s)


def _open_svhn(spec: str, options: DataOptions) -> DataSource:
    _check_split("svhn", options.split, TORCHVISION_SPLITS["svhn"])
    try:
        import scipy.io
    except ImportError:
        raise SatcliError("SVHN needs scipy: pip install scipy") from None
    from torchvision.datasets import SVHN

    url, filename, md5 = SVHN.split_list[options.split]
    root = _data_root(options)
    path = root / filename
    if not path.is_file():
        if not options.download:
            raise SatcliError(f"SVHN not found: expected {path} (the cropped-digits {filename}) or allow the download")
        from torchvision.datasets import utils

        _download("SVHN", utils.download_url, url, str(root), filename, md5)
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:
        raise SatcliError(f"cannot read SVHN file {path}: {_one_line(exc)}") from exc
    images, labels = mat.get("X"), mat.get("y")
    if not (isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[2] == 3):
        raise SatcliError(f"SVHN file {path} has no 'X' array of shape (H, W, 3, N)")
    if not isinstance(labels, np.ndarray) or labels.size != images.shape[3]:
        raise SatcliError(f"SVHN file {path} has no 'y' array with one label per image")
    label_array = labels.astype(np.int64).reshape(-1)
    label_array[label_array == 10] = 0  # SVHN stores the digit 0 as class 10
    # (H, W, C, N) -> (N, C, H, W)
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (3, 2, 0, 1))).astype(np.uint8, copy=False))
    mean, std = NORMALIZATION["svhn"]
    transform = _ImageTransform(255.0, mean, std, options.image_size)
    return _memory_source(spec, "svhn", [options.split], x, torch.from_numpy(label_array), transform, options)
