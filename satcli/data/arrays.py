"""Array files: .npz / .pt / .h5 with x/y, inputs/labels or data/targets, or one .npy array, read without
running code.

dtype and shape decide what an array is: uint8 is images (scaled to [0, 1] as float32); any other integer
array of shape (N, T) is token ids (kept int64, for Embedding layers); other integer arrays and floats
are float32 values, used as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from satcli.data.common import _ImageTransform, _memory_source, _one_line
from satcli.data.rows import encode_labels
from satcli.data.source import DataOptions, DataSource, _check_split
from satcli.errors import SatcliError

ARRAY_SUFFIXES = (".npz", ".npy", ".pt", ".h5", ".hdf5")
# (inputs key, labels key) pairs looked up in array files, in this order.
ARRAY_KEYS = (("x", "y"), ("inputs", "labels"), ("data", "targets"))


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


def _read_npy(path: Path) -> tuple[Any, Any, str, str | None, list[str]]:
    try:
        inputs = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as an .npy file: {_one_line(exc)}") from exc
    return inputs, None, "array", None, ["(a single array)"]


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
    readers = {".npz": _read_npz, ".npy": _read_npy, ".pt": _read_pt}
    reader = readers.get(suffix, _read_h5)
    raw_inputs, raw_labels, input_key, label_key, keys = reader(path)
    inputs = _as_tensor(raw_inputs, path, input_key)
    if inputs.dim() == 0 or inputs.shape[0] == 0:
        raise SatcliError(f"{path}: {input_key} holds no samples (shape {tuple(inputs.shape)})")
    count = int(inputs.shape[0])
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None
    if raw_labels is not None and label_key is not None:
        text = None if isinstance(raw_labels, torch.Tensor) else np.asarray(raw_labels)
        if text is not None and text.dtype.kind in "US":
            # String class names: coded by their position in the sorted vocabulary, like table labels.
            labels, class_names = encode_labels(str(path), label_key, None, [str(v) for v in text.reshape(-1)])
        else:
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
    details = [f"{input_key}/{label_key}" if labels is not None else f"{input_key}, unlabeled"]
    transform: Callable[[torch.Tensor], torch.Tensor]
    if is_token_ids(inputs):
        transform = _TokenIds()  # int64 per batch; the array keeps its own (often smaller) integer type
        details.append("token ids")
    else:
        scale = 255.0 if inputs.dtype == torch.uint8 else 1.0
        transform = _ImageTransform(scale, size=options.image_size)
        if inputs.dtype != torch.uint8:
            inputs = inputs.to(torch.float32)
    source = _memory_source(spec, str(path), details, inputs, labels, transform, options)
    source.class_names = class_names
    return source


def is_token_ids(inputs: torch.Tensor) -> bool:
    """An (N, T) integer array that is not uint8 (uint8 is image data): ids for an Embedding, kept integer."""
    integer = not inputs.is_floating_point() and inputs.dtype not in (torch.uint8, torch.bool)
    return integer and inputs.dim() == 2


class _TokenIds:
    """Token ids stay int64 (an Embedding needs integer indices); a class so DataLoader workers can pickle it."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64).contiguous()


def _as_labels(labels: torch.Tensor, path: Path, key: str) -> torch.Tensor:
    """Class indices as int64 of shape (N,); integral floats are accepted, (N, 1) is flattened."""
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.dim() != 1:
        raise SatcliError(f"{path}: {key} must be one class index per sample, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() and not bool(torch.all(labels == labels.round())):
        raise SatcliError(f"{path}: {key} holds non-integer values; expected class indices")
    return labels.to(torch.int64)
