"""Data specs: turn `--data SPEC` into the normalized input tensors that checkpoints are scored on.

Specs: the embedded `digits`; the torchvision data sets `cifar10`, `cifar100`, `mnist`, `fashion-mnist` and
`svhn` under a data root; `folder:PATH` image trees; and `.npz` / `.pt` / `.h5` array files. Files on disk
are untrusted input: nothing here runs code found in them (CIFAR pickles go through a restricted
unpickler, `.pt` files through `torch.load(weights_only=True)`, `.npz` files with `allow_pickle=False`).
"""

from __future__ import annotations

import importlib.resources
import io
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from satcli.errors import SatcliError

# Mean and standard deviation over all pixels of the digits TRAIN split scaled to [0, 1]
# (tests/test_data.py recomputes them from satcli/datasets/digits.npz).
DIGITS_MEAN = 0.3050184552378965
DIGITS_STD = 0.3760207780345291

# Per-channel (mean, std) of each training set scaled to [0, 1], the values the usual training recipes use:
# CIFAR-10 / CIFAR-100 per-pixel statistics of the 50,000 training images (e.g. Stevens, Antiga & Viehmann,
# "Deep Learning with PyTorch", ch. 7); MNIST 0.1307 / 0.3081 from pytorch/examples mnist/main.py;
# Fashion-MNIST 0.2860 / 0.3530 and SVHN as tabulated by chatflip/CalculationMeanStd and PatrickZH/DeepCore;
# ImageNet from the torchvision model documentation (used for folder:PATH).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

TORCHVISION_SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "mnist": ("train", "test"),
    "fashion-mnist": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}
DIGITS_SPLITS = ("train", "test", "all")
ARRAY_SUFFIXES = (".npz", ".pt", ".h5", ".hdf5")
# (inputs key, labels key) pairs looked up in array files, in this order.
ARRAY_KEYS = (("x", "y"), ("inputs", "labels"), ("data", "targets"))
ACCEPTED_SPECS = (
    "digits, cifar10, cifar100, mnist, fashion-mnist, svhn, folder:PATH, or an array file PATH.npz, "
    "PATH.pt, PATH.h5 or PATH.hdf5"
)


@dataclass(frozen=True)
class DataOptions:
    """How to open a data spec: where its files live, which part of it to use and how to batch it."""

    root: Path | None = None
    download: bool = False
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 256
    workers: int = 0
    image_size: int | None = None
    seed: int = 0


def default_data_root() -> Path:
    """Where torchvision data sets live unless --data-root says otherwise: $SATCLI_DATA_ROOT or a cache dir."""
    env = os.environ.get("SATCLI_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "satcli" / "data"


@dataclass
class DataSource:
    """An opened data spec: a deterministic stream of (x, y) batches, optionally cached in memory."""

    spec: str
    description: str
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]]
    num_samples: int
    sample_shape: tuple[int, ...]
    has_labels: bool
    options: DataOptions
    _cache: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches in dataset order; from the in-memory copy once materialize() has run."""
        step = self.options.batch_size
        if self._cache is not None:
            xs, ys = self._cache
            for start in range(0, self.num_samples, step):
                # Copies, so a model that edits its input in place cannot corrupt the cache for the next one.
                yield xs[start : start + step].clone(), ys[start : start + step].clone()
            return
        loader = DataLoader(self.dataset, batch_size=step, shuffle=False, num_workers=self.options.workers)
        try:
            # default_collate returns [x, y] lists; the contract is tuples.
            yield from ((x, y) for x, y in loader)
        except SatcliError as exc:
            # A worker's error comes back in a reference cycle with its traceback, which would keep the
            # loader's workers alive until a garbage collection that then stalls for seconds; dropping the
            # traceback frees them now.
            exc.__traceback__ = None
            raise SatcliError(_last_line(str(exc))) from None

    def materialize(self) -> None:
        """Decode every sample once into two contiguous tensors, so scoring many checkpoints decodes once."""
        if self._cache is not None:
            return
        xs = torch.empty((self.num_samples, *self.sample_shape), dtype=torch.float32)
        ys = torch.empty((self.num_samples,), dtype=torch.int64)
        start = 0
        for x, y in self.batches():
            xs[start : start + len(x)] = x
            ys[start : start + len(y)] = y
            start += len(x)
        self._cache = (xs, ys)


def open_data(spec: str, options: DataOptions) -> DataSource:
    """Open a data spec; raises SatcliError for an unknown spec, a bad option or missing/unreadable files."""
    _check_options(options)
    text = spec.strip()
    name = text.lower()
    if name == "digits":
        return _open_digits(spec, options)
    if name in ("cifar10", "cifar100"):
        return _open_cifar(spec, name, options)
    if name in ("mnist", "fashion-mnist"):
        return _open_mnist(spec, name, options)
    if name == "svhn":
        return _open_svhn(spec, options)
    if name.startswith("folder:"):
        return _open_folder(spec, text[len("folder:") :], options)
    if Path(name).suffix in ARRAY_SUFFIXES:
        return _open_arrays(spec, Path(text).expanduser(), options)
    hint = f" (for an image folder use folder:{text})" if text and Path(text).expanduser().is_dir() else ""
    raise SatcliError(f"unknown data spec {spec!r}{hint}; accepted: {ACCEPTED_SPECS}")


def _check_options(options: DataOptions) -> None:
    """Reject option values that cannot describe any data, before touching files."""
    if options.batch_size <= 0:
        raise SatcliError(f"--batch-size must be a positive integer, got {options.batch_size}")
    if options.workers < 0:
        raise SatcliError(f"--workers must be 0 or more, got {options.workers}")
    if options.max_samples is not None and options.max_samples <= 0:
        raise SatcliError(f"--max-samples must be a positive integer, got {options.max_samples}")
    if options.image_size is not None and options.image_size <= 0:
        raise SatcliError(f"--image-size must be a positive integer, got {options.image_size}")


def _check_split(name: str, split: str, valid: Sequence[str]) -> None:
    if split not in valid:
        raise SatcliError(f"{name} has no split {split!r}; valid splits: {', '.join(valid)}")


def _last_line(message: str) -> str:
    """The original one-line message of an error that a DataLoader worker re-raised with its traceback."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else message
    prefix = f"{SatcliError.__module__}.{SatcliError.__name__}: "
    return last[len(prefix) :] if last.startswith(prefix) else last


# ---------------------------------------------------------------------------------------------------------
# Shared machinery: per-item transform, in-memory data set, subset selection, description


class _ImageTransform:
    """Cast to float32, scale raw values to [0, 1], optionally resize to SxS, then normalize per channel.

    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(
        self,
        scale: float,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        size: int | None = None,
    ) -> None:
        self.scale = scale
        self.size = size
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.scale != 1.0:
            x = x / self.scale
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            # antialias only matters when shrinking, where plain bilinear would alias.
            x = F.interpolate(
                x.unsqueeze(0), size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            ).squeeze(0)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x.contiguous()


class _MemoryDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Raw samples held in memory (uint8 images or float32 arrays), transformed one item at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: _ImageTransform) -> None:
        self.x = x
        self.y = y
        self.transform = transform

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[index]), self.y[index]


class _FolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(image path, class index) pairs decoded to RGB on access."""

    def __init__(self, samples: list[tuple[str, int]], transform: _ImageTransform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.samples[index]
        return self.transform(_load_rgb(path)), torch.tensor(label, dtype=torch.int64)


def _subset_indices(total: int, options: DataOptions) -> list[int] | None:
    """The sorted fixed-seed random subset --max-samples asks for, or None to keep everything."""
    if options.max_samples is None or options.max_samples >= total:
        return None
    generator = torch.Generator().manual_seed(options.seed)
    chosen = torch.randperm(total, generator=generator)[: options.max_samples]
    return sorted(chosen.tolist())


def _describe(name: str, details: Sequence[str], total: int, kept: int, options: DataOptions) -> str:
    parts = list(details)
    if kept == total:
        parts.append(f"{kept} samples")
    else:
        parts.append(f"{kept} of {total} samples, seed {options.seed}")
    if options.image_size is not None:
        parts.append(f"resized to {options.image_size}x{options.image_size}")
    return f"{name} ({', '.join(parts)})"


def _memory_source(
    spec: str,
    name: str,
    details: Sequence[str],
    x: torch.Tensor,
    y: torch.Tensor | None,
    transform: _ImageTransform,
    options: DataOptions,
) -> DataSource:
    """Wrap in-memory raw samples (first axis = sample) into a DataSource, applying --max-samples."""
    total = int(x.shape[0])
    if total == 0:
        raise SatcliError(f"{name} holds no samples")
    has_labels = y is not None
    labels = torch.full((total,), -1, dtype=torch.int64) if y is None else y.to(torch.int64)
    indices = _subset_indices(total, options)
    if indices is not None:
        index = torch.tensor(indices, dtype=torch.int64)
        x, labels = x.index_select(0, index), labels.index_select(0, index)
    dataset = _MemoryDataset(x.contiguous(), labels.contiguous(), transform)
    return DataSource(
        spec=spec,
        description=_describe(name, details, total, len(dataset), options),
        dataset=dataset,
        num_samples=len(dataset),
        sample_shape=tuple(dataset[0][0].shape),
        has_labels=has_labels,
        options=options,
    )


def _data_root(options: DataOptions) -> Path:
    return (options.root if options.root is not None else default_data_root()).expanduser()


def _download(title: str, fetch: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Run a torchvision download helper, turning network and checksum failures into one-line errors."""
    try:
        fetch(*args, **kwargs)
    except Exception as exc:
        raise SatcliError(f"downloading {title} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message folded onto one line and cut to a readable length."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------
# digits (embedded)


def _open_digits(spec: str, options: DataOptions) -> DataSource:
    """The UCI digits shipped in the package: 8x8 grey images, values 0..16, train-split normalization."""
    _check_split("digits", options.split, DIGITS_SPLITS)
    resource = importlib.resources.files("satcli").joinpath("datasets/digits.npz")
    with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as arrays:
        images, labels, split = arrays["images"], arrays["labels"], arrays["split"]
    if options.split != "all":
        keep = split == (0 if options.split == "train" else 1)
        images, labels = images[keep], labels[keep]
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    transform = _ImageTransform(16.0, (DIGITS_MEAN,), (DIGITS_STD,), options.image_size)
    return _memory_source(spec, "digits", [options.split], x, y, transform, options)


# ---------------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: python-format pickles read with a restricted unpickler


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
                f"(extract {layout.archive} in {root}) or pass --download"
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
            "(the four original files, gunzipped) or pass --download"
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
            raise SatcliError(f"SVHN not found: expected {path} (the cropped-digits {filename}) or pass --download")
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


# ---------------------------------------------------------------------------------------------------------
# folder:PATH (ImageFolder layout)


def _load_rgb(path: str) -> torch.Tensor:
    """One image file as a (3, H, W) uint8 tensor."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.array(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SatcliError(f"cannot read image {path}: {_one_line(exc)}") from exc
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SatcliError(f"cannot read image {path}: {_one_line(exc)}") from exc


def _open_folder(spec: str, folder_text: str, options: DataOptions) -> DataSource:
    if not folder_text.strip():
        raise SatcliError("folder: needs a path, e.g. folder:./images")
    folder = Path(folder_text.strip()).expanduser()
    name = f"folder:{folder}"
    _check_split(name, options.split, (DataOptions.split,))
    if not folder.is_dir():
        raise SatcliError(f"image folder not found: {folder}")
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder), loader=_load_rgb)
    except FileNotFoundError as exc:
        raise SatcliError(
            f"no images in {folder}: expected {folder}/CLASS/IMAGE files (.png, .jpg, ...) ({_one_line(exc)})"
        ) from exc
    samples: list[tuple[str, int]] = [(str(path), int(label)) for path, label in found.samples]
    total = len(samples)
    indices = _subset_indices(total, options)
    if indices is not None:
        samples = [samples[i] for i in indices]
    if options.image_size is None:
        # Checked up front: a batch of mixed sizes cannot be stacked, and failing mid-run wastes the run.
        first_size = _image_size(samples[0][0])
        for path, _ in samples[1:]:
            size = _image_size(path)
            if size != first_size:
                raise SatcliError(
                    f"images in {folder} differ in size ({samples[0][0]} is {first_size[0]}x{first_size[1]}, "
                    f"{path} is {size[0]}x{size[1]}); pass --image-size to resize them"
                )
    mean, std = NORMALIZATION["imagenet"]
    dataset = _FolderDataset(samples, _ImageTransform(255.0, mean, std, options.image_size))
    return DataSource(
        spec=spec,
        description=_describe(name, [f"{len(found.classes)} classes"], total, len(dataset), options),
        dataset=dataset,
        num_samples=len(dataset),
        sample_shape=tuple(dataset[0][0].shape),
        has_labels=True,
        options=options,
    )


# ---------------------------------------------------------------------------------------------------------
# Array files: .npz / .pt / .h5 with x/y, inputs/labels or data/targets


def _pick_keys(path: Path, keys: Sequence[str]) -> tuple[str, str | None]:
    """The (inputs, labels-or-None) keys to use from the keys a file holds."""
    for input_key, label_key in ARRAY_KEYS:
        if input_key in keys:
            return input_key, label_key if label_key in keys else None
    found = ", ".join(keys) if keys else "none"
    expected = ", ".join(f"{x}/{y}" for x, y in ARRAY_KEYS)
    raise SatcliError(f"{path} has no inputs: expected keys {expected} (labels optional); keys found: {found}")


def _read_npz(path: Path) -> tuple[Any, Any, str, str | None, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            keys = list(arrays.files)
            input_key, label_key = _pick_keys(path, keys)
            inputs = arrays[input_key]
            labels = None if label_key is None else arrays[label_key]
    except SatcliError:
        raise
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as an .npz file: {_one_line(exc)}") from exc
    return inputs, labels, input_key, label_key, keys


def _read_pt(path: Path) -> tuple[Any, Any, str, str | None, list[str]]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as tensors: {_torch_load_reason(exc)}") from exc
    if isinstance(content, torch.Tensor):
        return content, None, "tensor", None, ["(a single tensor)"]
    if isinstance(content, (tuple, list)) and len(content) in (1, 2):
        labels = content[1] if len(content) == 2 else None
        return content[0], labels, "[0]", "[1]" if labels is not None else None, [f"(a {len(content)}-tuple)"]
    if isinstance(content, dict):
        fields = {str(key): value for key, value in content.items()}
        keys = list(fields)
        input_key, label_key = _pick_keys(path, keys)
        labels = None if label_key is None else fields[label_key]
        return fields[input_key], labels, input_key, label_key, keys
    raise SatcliError(
        f"{path} holds a {type(content).__name__}; expected a dict of tensors, a tensor or an (x, y) tuple"
    )


def _torch_load_reason(exc: Exception) -> str:
    """The useful line of a torch.load failure; its weights-only refusal opens with generic advice."""
    text = str(exc)
    if not text.startswith("Weights only load failed"):
        return _one_line(exc)
    reasons = []
    for line in text.splitlines()[1:]:
        line = line.split("WeightsUnpickler error:", 1)[-1].strip()
        if line and not line.startswith(("Please file an issue", "Check the documentation")):
            reasons.append(line)
    reason = reasons[0] if reasons else "unsupported content"
    return f"it holds more than tensors ({reason}); array files are read with torch.load(weights_only=True)"


def _read_h5(path: Path) -> tuple[Any, Any, str, str | None, list[str]]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            keys = [key for key in handle if isinstance(handle[key], h5py.Dataset)]
            input_key, label_key = _pick_keys(path, keys)
            inputs = handle[input_key][()]
            labels = None if label_key is None else handle[label_key][()]
    except SatcliError:
        raise
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as an HDF5 file: {_one_line(exc)}") from exc
    return inputs, labels, input_key, label_key, keys


def _as_tensor(value: Any, path: Path, key: str) -> torch.Tensor:
    """A numeric tensor from an array, tensor or nested list, or a SatcliError naming the key."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise SatcliError(f"{path}: {key} is not numeric (dtype {array.dtype})")
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise SatcliError(f"{path}: {key} is complex; expected real inputs")
    return tensor


def _open_arrays(spec: str, path: Path, options: DataOptions) -> DataSource:
    _check_split(str(path), options.split, (DataOptions.split,))
    if not path.is_file():
        raise SatcliError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    reader = _read_npz if suffix == ".npz" else _read_pt if suffix == ".pt" else _read_h5
    raw_inputs, raw_labels, input_key, label_key, keys = reader(path)
    inputs = _as_tensor(raw_inputs, path, input_key)
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise SatcliError(f"{path}: {input_key} holds no samples (shape {tuple(inputs.shape)})")
    count = int(inputs.shape[0])
    labels: torch.Tensor | None = None
    if raw_labels is not None and label_key is not None:
        labels = _as_labels(_as_tensor(raw_labels, path, label_key), path, label_key)
        if labels.shape[0] != count:
            raise SatcliError(
                f"{path}: {input_key} has {count} samples but {label_key} has {labels.shape[0]} labels "
                f"(keys found: {', '.join(keys)})"
            )
    if options.image_size is not None and inputs.dim() != 4:
        raise SatcliError(
            f"--image-size needs images of shape (N, C, H, W); {path} {input_key} is {tuple(inputs.shape)}"
        )
    if inputs.dtype == torch.uint8:
        scale = 255.0
    else:
        inputs, scale = inputs.to(torch.float32), 1.0
    details = [f"{input_key}/{label_key}" if labels is not None else f"{input_key}, unlabeled"]
    return _memory_source(
        spec, str(path), details, inputs, labels, _ImageTransform(scale, size=options.image_size), options
    )


def _as_labels(labels: torch.Tensor, path: Path, key: str) -> torch.Tensor:
    """Class indices as int64 of shape (N,); integral floats are accepted, (N, 1) is flattened."""
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.dim() != 1:
        raise SatcliError(f"{path}: {key} must be one class index per sample, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() and not bool(torch.all(labels == labels.round())):
        raise SatcliError(f"{path}: {key} holds non-integer values; expected class indices")
    return labels.to(torch.int64)
