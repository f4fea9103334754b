"""Load a checkpoint of any common PyTorch format into an eval-mode module on the chosen device.

Formats are told apart by file content, not by extension, and nothing that can run code on load
(pickled Python objects, compiled AOTInductor code) is loaded unless the caller trusts the file.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import importlib
import inspect
import io
import json
import logging
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import torch

from satcli.errors import SatcliError

FORMATS = ("export", "torchscript", "state_dict", "safetensors", "pickle")

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
_STRIPPABLE_PREFIXES = ("model.", "module.")
_ARCH_HINT = "pass --arch torchvision:NAME or --arch package.module:factory"
_SHOWN_KEYS = 5
_CHUNK = 1 << 20
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass
class LoadedModel:
    """A loaded checkpoint: the module to run plus where it came from."""

    path: Path
    sha256: str
    format: str
    module: torch.nn.Module
    device: torch.device
    arch: str | None
    input_shape: tuple[int | None, ...] | None


def resolve_device(spec: str) -> torch.device:
    """Turn a --device value into a usable torch.device, refusing devices this machine lacks."""
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise SatcliError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise SatcliError(f"device {spec!r} requested but CUDA is not available here; use --device cpu")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise SatcliError(f"device {spec!r} does not exist; this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def parse_arch_kwargs(items: Sequence[str]) -> dict[str, object]:
    """Parse KEY=VALUE strings; values are Python literals when they parse as one, else plain strings."""
    kwargs: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SatcliError(f"bad --arch-kwarg {item!r}; expected KEY=VALUE, e.g. num_classes=10")
        if key in kwargs:
            raise SatcliError(f"--arch-kwarg {key!r} is given more than once")
        try:
            kwargs[key] = ast.literal_eval(raw.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            kwargs[key] = raw
    return kwargs


def build_arch(arch: str, kwargs: Mapping[str, object]) -> torch.nn.Module:
    """Instantiate an untrained architecture from "torchvision:NAME" or "package.module:callable"."""
    source, sep, name = arch.partition(":")
    if not sep or not source.strip() or not name.strip():
        raise SatcliError(f"bad --arch {arch!r}; use torchvision:NAME or package.module:callable")
    source, name = source.strip(), name.strip()
    if source == "torchvision":
        return _build_torchvision(name, dict(kwargs))
    return _build_from_factory(arch, source, name, dict(kwargs))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints do not sit in memory twice."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SatcliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def load_model(
    path: Path | str,
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, object] | None = None,
    trust_pickle: bool = False,
    device: str | torch.device = "auto",
) -> LoadedModel:
    """Load a checkpoint file into an eval-mode module on `device`, detecting its format from its content."""
    path = Path(path)
    dev = _as_device(device)
    if not path.exists():
        raise SatcliError(f"model file not found: {path}")
    if path.is_dir():
        raise SatcliError(f"{path} is a directory, not a model file")
    sha256 = file_sha256(path)
    kwargs = dict(arch_kwargs or {})
    kind = _detect_format(path)

    input_shape: tuple[int | None, ...] | None = None
    if kind == "export":
        if arch is not None:
            raise SatcliError(f"{path} is a torch.export archive and carries its own graph; drop --arch")
        fmt, (module, input_shape) = "export", _load_export(path, dev, trust_pickle)
    elif kind == "torchscript":
        script = _load_torchscript(path, dev)
        fmt = "torchscript"
        module = script.eval() if arch is None else _into_arch(path, script.state_dict(), arch, kwargs, dev)
    elif kind == "safetensors":
        fmt, module = "safetensors", _into_arch(path, _load_safetensors(path, dev), arch, kwargs, dev)
    elif kind == "torch":
        fmt, module = _load_torch_save(path, dev, arch, kwargs, trust_pickle)
    else:
        if not trust_pickle:
            raise SatcliError(_pickle_refusal(path, None))
        fmt, module = _from_trusted_object(path, _load_plain_pickle(path), dev, arch, kwargs)
    return LoadedModel(path, sha256, fmt, module, dev, arch, input_shape)


def _as_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        if device.type == "cpu":
            return torch.device("cpu")
        return resolve_device(str(device))
    return resolve_device(device)


def _build_torchvision(name: str, kwargs: dict[str, object]) -> torch.nn.Module:
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise SatcliError(f"unknown torchvision model {name!r}; {hint}")
    # Weights always come from the checkpoint: anything that would download them is refused.
    for key in ("pretrained", "pretrained_backbone", "weights", "weights_backbone"):
        value = kwargs.pop(key, None)
        if value:
            raise SatcliError(f"{key}={value!r} would download weights; weights come from the model file")
    shown = _kwargs_text(kwargs)
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters:
        # Detection/segmentation builders default to downloading a pretrained backbone.
        kwargs["weights_backbone"] = None
    try:
        module = torchvision.models.get_model(name, weights=None, **kwargs)
    except Exception as exc:
        raise SatcliError(f"cannot build torchvision:{name}{shown}: {_reason(exc)}") from None
    return module


def _build_from_factory(arch: str, module_name: str, attr_path: str, kwargs: dict[str, object]) -> torch.nn.Module:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise SatcliError(f"cannot import {module_name!r} for --arch {arch}: {_reason(exc)}") from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise SatcliError(f"--arch {arch}: {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        raise SatcliError(f"--arch {arch}: {attr_path!r} is not callable")
    try:
        module = target(**kwargs)
    except Exception as exc:
        raise SatcliError(f"--arch {arch}{_kwargs_text(kwargs)} failed: {_reason(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SatcliError(f"--arch {arch} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _detect_format(path: Path) -> str:
    """One of "export", "torchscript", "safetensors", "torch" (torch.save) or "pickle" (pickle.dump)."""
    try:
        is_zip = zipfile.is_zipfile(path)
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise SatcliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if is_zip:
        try:
            with zipfile.ZipFile(path) as archive:
                names = {_archive_relative(name) for name in archive.namelist()}
                if "archive_format" in names and _read_member(archive, "archive_format") == b"pt2":
                    return "export"
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None
        if "serialized_exported_program.json" in names:
            return "export"
        if "constants.pkl" in names and any(name.startswith("code/") for name in names):
            return "torchscript"
        return "torch"
    if _looks_like_safetensors(path, head):
        return "safetensors"
    if path.suffix.lower() == ".safetensors":
        raise SatcliError(f"cannot read {path} as a PyTorch model: not a valid safetensors file")
    # Pickles start with the PROTO opcode (0x80) and a protocol number; torch.save's legacy
    # (non-zip) format is a pickle that begins with torch's magic number.
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        raise SatcliError(f"cannot read {path} as a PyTorch model: truncated or corrupt zip archive")
    raise SatcliError(f"cannot read {path} as a PyTorch model: unrecognised file content")


def _archive_relative(name: str) -> str:
    """A zip member's name without the single top-level folder torch puts every member in."""
    root, sep, rest = name.partition("/")
    return rest if sep else root


def _read_member(archive: zipfile.ZipFile, relative: str) -> bytes:
    for name in archive.namelist():
        if _archive_relative(name) == relative:
            return archive.read(name).strip()
    return b""


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    """A safetensors file is an 8-byte little-endian header length, then that many bytes of JSON."""
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < header_len <= path.stat().st_size - 8


def _load_export(
    path: Path, dev: torch.device, trust_pickle: bool
) -> tuple[torch.nn.Module, tuple[int | None, ...] | None]:
    import torch.export.passes

    if not trust_pickle:
        unsafe = _unsafe_export_members(path)
        if unsafe:
            raise SatcliError(_pickle_refusal(path, ", ".join(_first(unsafe)), archive=True))
    try:
        with _quiet_torch():
            program = torch.export.load(path)
            program = torch.export.passes.move_to_device_pass(program, dev)
            module = program.module()
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None
    # No .eval() here: ExportedProgram.module() raises NotImplementedError for train()/eval(), because
    # dropout and batch-norm behaviour is fixed in the graph when the model is exported.
    return module, _export_input_shape(program)


def _unsafe_export_members(path: Path) -> list[str]:
    """Members of a .pt2 archive that torch.export.load would unpickle unsafely or run as native code.

    torch.export.load falls back to weights_only=False for sample inputs and pickled weights, and
    loads AOTInductor shared libraries, so those members are checked before it is called.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {_archive_relative(name): name for name in archive.namelist()}
            to_check: list[str] = []
            unsafe: list[str] = []
            for rel in members:
                if rel.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
                    unsafe.append(rel)
                elif rel.startswith(("data/sample_inputs/", "serialized_")) or rel.endswith(".pt"):
                    # serialized_* are the members of the older (torch 2.7) export archive layout.
                    if rel != "serialized_exported_program.json":
                        to_check.append(rel)
                elif rel.startswith(("data/weights/", "data/constants/")) and rel.endswith("_config.json"):
                    folder = rel.rsplit("/", 1)[0]
                    config = json.loads(archive.read(members[rel])).get("config", {})
                    for entry in config.values():
                        file_name = entry.get("path_name", "")
                        if file_name.startswith(("custom_obj_", "opaque_obj_")):
                            unsafe.append(f"{folder}/{file_name}")
                        elif entry.get("use_pickle"):
                            to_check.append(f"{folder}/{file_name}")
            for rel in to_check:
                name = members.get(rel)
                if name is None:
                    continue
                try:
                    torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
                except Exception:
                    unsafe.append(rel)
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError) as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None
    return sorted(set(unsafe))


def _export_input_shape(program: torch.export.ExportedProgram) -> tuple[int | None, ...] | None:
    """Shape of the first user input as traced; symbolic (dynamic) dims become None."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta.get("val")
            if not isinstance(value, torch.Tensor):
                return None
            return tuple(dim if isinstance(dim, int) else None for dim in value.shape)
    return None


def _load_torchscript(path: Path, dev: torch.device) -> torch.jit.ScriptModule:
    try:
        with _quiet_torch():
            return torch.jit.load(str(path), map_location=dev)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None


def _load_safetensors(path: Path, dev: torch.device) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path, device=str(dev))
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None


def _load_torch_save(
    path: Path, dev: torch.device, arch: str | None, kwargs: Mapping[str, object], trust_pickle: bool
) -> tuple[str, torch.nn.Module]:
    """torch.save files: weights-only first; whole pickled objects only when the caller trusts the file."""
    try:
        with _quiet_torch():
            obj = torch.load(path, map_location=dev, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
            raise SatcliError(_pickle_refusal(path, found.group(1) if found else None)) from None
        try:
            with _quiet_torch():
                trusted = torch.load(path, map_location=dev, weights_only=False)
        except Exception as exc:
            raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None
        return _from_trusted_object(path, trusted, dev, arch, kwargs)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None
    state = _find_state_dict(obj)
    if state is None:
        raise SatcliError(f"{path} holds a {type(obj).__name__}, not a model or a state dict")
    return "state_dict", _into_arch(path, state, arch, kwargs, dev)


def _load_plain_pickle(path: Path) -> object:
    """A pickle.dump file (not torch.save); only reached when the caller trusts the file."""
    try:
        with _quiet_torch(), open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None


def _from_trusted_object(
    path: Path, obj: object, dev: torch.device, arch: str | None, kwargs: Mapping[str, object]
) -> tuple[str, torch.nn.Module]:
    """The module in a trusted unpickled object: a module, {"model": module}, or a state dict."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), torch.nn.Module):
        obj = obj["model"]
    if isinstance(obj, torch.nn.Module):
        if arch is None:
            return "pickle", obj.to(dev).eval()
        return "pickle", _into_arch(path, obj.state_dict(), arch, kwargs, dev)
    # Checkpoints often pickle extras (argparse.Namespace, numpy scalars) next to a plain state dict.
    state = _find_state_dict(obj)
    if state is not None:
        return "state_dict", _into_arch(path, state, arch, kwargs, dev)
    raise SatcliError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module or a state dict")


def _pickle_refusal(path: Path, what: str | None, *, archive: bool = False) -> str:
    detail = f" ({what})" if what else ""
    kind = "contains pickled Python objects or compiled code" if archive else "is a pickled Python object"
    return (
        f"{path} {kind}{detail}, which can run arbitrary code when loaded; re-save the model with "
        "torch.export.save, torch.jit.save or as a state_dict, or pass --trust-pickle if you trust the file"
    )


def _find_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    """The state dict in a weights-only load: the dict itself, or one under a usual checkpoint key."""
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _STATE_DICT_KEYS:
            value = obj.get(key)
            if _is_tensor_dict(value):
                return dict(value)
    return None


def _is_tensor_dict(obj: object) -> TypeGuard[Mapping[str, torch.Tensor]]:
    return isinstance(obj, Mapping) and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items()
    )


def _into_arch(
    path: Path,
    state: Mapping[str, torch.Tensor],
    arch: str | None,
    kwargs: Mapping[str, object],
    dev: torch.device,
) -> torch.nn.Module:
    """Build --arch and load `state` into it strictly, with a readable error for any mismatch."""
    if arch is None:
        raise SatcliError(f"{path} holds a state dict; {_ARCH_HINT}")
    module = build_arch(arch, kwargs)
    expected = module.state_dict(keep_vars=True)
    state = _strip_prefixes(dict(state), expected)
    _fill_tied(state, expected)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} is {tuple(state[key].shape)} in the file but {tuple(expected[key].shape)} in the model"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_count(missing, 'key')}: {', '.join(_first(missing))}")
    if unexpected:
        problems.append(f"unexpected {_count(unexpected, 'key')}: {', '.join(_first(unexpected))}")
    if mismatched:
        problems.append(f"shape mismatch for {_count(mismatched, 'key')}: {'; '.join(_first(mismatched))}")
    if problems:
        raise SatcliError(f"{path} does not match --arch {arch}: {'; '.join(problems)}")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise SatcliError(f"{path} does not match --arch {arch}: {_reason(exc)}") from None
    return module.to(dev).eval()


def _strip_prefixes(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a Lightning "model." or DataParallel "module." prefix that all keys have but the arch lacks."""
    changed = True
    while changed and state:
        changed = False
        for prefix in _STRIPPABLE_PREFIXES:
            in_state = all(key.startswith(prefix) for key in state)
            if in_state and not all(key.startswith(prefix) for key in expected):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                changed = True
    return state


def _fill_tied(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    """Supply keys of tied weights that the saver (e.g. safetensors) wrote only once."""
    present = {id(expected[key]): key for key in expected if key in state}
    for key, tensor in expected.items():
        alias = present.get(id(tensor))
        if key not in state and alias is not None:
            state[key] = state[alias]


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Keep torch's deprecation warnings and logged tracebacks off the user's terminal while loading."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export", "torch.jit")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript archive.*", category=UserWarning)
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    """A short one-line reason from an exception, without torch's multi-line advice."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text.split(". This is an internal miniz error")[0]
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first(items: Sequence[str]) -> list[str]:
    shown = list(items[:_SHOWN_KEYS])
    if len(items) > _SHOWN_KEYS:
        shown.append(f"... ({len(items) - _SHOWN_KEYS} more)")
    return shown


def _count(items: Sequence[str], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _kwargs_text(kwargs: Mapping[str, object]) -> str:
    if not kwargs:
        return ""
    return "(" + ", ".join(f"{key}={value!r}" for key, value in kwargs.items()) + ")"
