"""Hugging Face model directories: detection, resolution from the local hub cache, and Auto-class loading.

A model directory holds config.json and weights (model.safetensors, sharded safetensors with an index, or
pytorch_model.bin). `.bin` weights are checked with `torch.load(weights_only=True)` before transformers
sees them, so a pickle that would run code is refused with the same message as any other checkpoint.
`hf:ORG/NAME` is looked up in the local Hugging Face cache only, unless the caller allows downloading.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from satcli.errors import SatcliError
from satcli.models.detect import file_sha256
from satcli.models.util import _first, _quiet_torch, _reason

HF_PREFIX = "hf:"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_EXPECTED = f"expected config.json and one of {', '.join(WEIGHT_FILES)}"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# Files a saved tokenizer consists of (one is enough); without any, AutoTokenizer would build an empty one from
# config.json that maps every word to its unknown token.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt")
TOKENIZER_PATTERNS = ("*.model", "*.spm", "*.tiktoken")
# Where AutoImageProcessor reads an image processor's settings (its own file, or nested in a processor's).
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# What a download fetches: config, weights, tokenizer and processor files; not other frameworks' weights.
_DOWNLOAD_IGNORE = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.gguf", "onnx/*", "openvino/*", "coreml/*"]


def require(package: str, extra: str, what: str = "Hugging Face support") -> ModuleType:
    """Import an optional dependency, or raise a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise SatcliError(
            f"{what} needs the {extra!r} extra ({package} is not installed): pip install 'satcli[{extra}]'"
        ) from None


def is_hf_model_dir(path: Path) -> bool:
    """True for a directory with config.json and weights in a layout transformers reads."""
    return path.is_dir() and (path / "config.json").is_file() and any((path / n).is_file() for n in WEIGHT_FILES)


def resolve_model_dir(spec: str | Path, *, download: bool = False) -> Path:
    """The local directory for a model directory path, `hf:PATH` or `hf:ORG/NAME` (from the hub cache).

    Network access happens only with `download=True`, for an `ORG/NAME` that is not cached yet.
    """
    text = str(spec)
    target = text[len(HF_PREFIX) :].strip() if text.startswith(HF_PREFIX) else text
    local = Path(target).expanduser()
    if local.exists():
        if not is_hf_model_dir(local):
            raise SatcliError(f"{local} is not a Hugging Face model directory: {_EXPECTED}")
        return local
    if not text.startswith(HF_PREFIX) or not _REPO_ID.fullmatch(target):
        raise SatcliError(f"model not found: {local}")
    return _from_hub_cache(target, download)


def _from_hub_cache(repo_id: str, download: bool) -> Path:
    require("huggingface_hub", "hf")
    from huggingface_hub import constants, snapshot_download

    how = f"download it with `hf download {repo_id}` or allow the download"
    try:
        folder = Path(
            snapshot_download(repo_id, local_files_only=not download, ignore_patterns=_DOWNLOAD_IGNORE)  # type: ignore[arg-type]
        )
    except Exception as exc:
        if not download:
            raise SatcliError(
                f"model {repo_id} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); {how}"
            ) from None
        raise SatcliError(f"downloading model {repo_id} failed: {_reason(exc)}") from None
    if not is_hf_model_dir(folder):
        raise SatcliError(f"model {repo_id} is only partly in the local Hugging Face cache ({folder}); {how}")
    return folder


def model_dir_sha256(folder: Path) -> str:
    """One digest over config.json and the weight files, so the same weights give the same identity."""
    digest = hashlib.sha256()
    names = ["config.json", *sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))]
    names += [n for n in WEIGHT_FILES if n.endswith(".json") and (folder / n).is_file()]
    for name in names:
        digest.update(f"{name}:{file_sha256(folder / name)}\n".encode())
    return digest.hexdigest()


def load_hf_model(
    folder: Path, device: torch.device, *, trust_remote_code: bool = False
) -> tuple[torch.nn.Module, str]:
    """An eval-mode float32 model from a model directory, and its class name.

    The class is the task head named in config.architectures (e.g. BertForSequenceClassification), else the
    base model (AutoModel). Every parameter must come from the files: missing or mismatched weights are errors.
    """
    transformers = require("transformers", "hf")
    _check_bin_weights(folder)
    with _quiet_transformers(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(
                folder, local_files_only=True, trust_remote_code=trust_remote_code
            )
            model_class = _model_class(transformers, config, trust_remote_code)
            model, info = model_class.from_pretrained(
                folder,
                config=config,
                local_files_only=True,
                trust_remote_code=trust_remote_code,
                dtype=torch.float32,
                output_loading_info=True,
            )
        except SatcliError:
            raise
        except Exception as exc:
            raise SatcliError(_load_failure(folder, exc)) from None
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing weights: {', '.join(_first(sorted(info['missing_keys'])))}")
    if info.get("mismatched_keys"):
        problems.append(f"shape mismatch: {', '.join(_first(sorted(str(k) for k in info['mismatched_keys'])))}")
    if problems:
        raise SatcliError(f"{folder} does not match {type(model).__name__}: {'; '.join(problems)}")
    return model.to(device).eval(), type(model).__name__


def has_tokenizer_files(folder: Path) -> bool:
    """True when a directory holds the files of a saved tokenizer, not only a model's config and weights."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES) or any(
        next(folder.glob(pattern), None) is not None for pattern in TOKENIZER_PATTERNS
    )


def has_image_processor_files(folder: Path) -> bool:
    """True when a directory holds a saved image processor's (or processor's) settings file."""
    return any((folder / name).is_file() for name in IMAGE_PROCESSOR_FILES)


def config_vocab_size(spec: str | Path, *, download: bool = False) -> int | None:
    """The embedding rows (config vocab_size) of a Hugging Face model spec; None for other models or configs."""
    text = str(spec)
    if not text.startswith(HF_PREFIX) and not is_hf_model_dir(Path(text).expanduser()):
        return None
    try:
        config = json.loads((resolve_model_dir(spec, download=download) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    size = config.get("vocab_size", (config.get("text_config") or {}).get("vocab_size"))
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def load_preprocessors(folder: Path | str, *, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(tokenizer, image processor) saved with a model directory; each None when the directory has none."""
    transformers = require("transformers", "hf")
    path = Path(folder)
    found: list[Any] = []
    with _quiet_transformers(transformers):
        # By name: touching transformers.AutoImageProcessor imports torchvision (~1 s), so only when needed.
        for auto_name, present in (
            ("AutoTokenizer", has_tokenizer_files(path)),
            ("AutoImageProcessor", has_image_processor_files(path)),
        ):
            if not present:
                found.append(None)
                continue
            auto = getattr(transformers, auto_name)
            try:
                found.append(auto.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code))
            except Exception:
                found.append(None)
    return found[0], found[1]


def model_preprocessors(
    spec: str | Path, *, download: bool = False, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """(tokenizer, image processor) of a Hugging Face model spec, so its data are prepared as it expects.

    (None, None) for a model that is not a Hugging Face model directory or `hf:` spec.
    """
    text = str(spec)
    if not text.startswith(HF_PREFIX) and not is_hf_model_dir(Path(text).expanduser()):
        return None, None
    folder = resolve_model_dir(spec, download=download)
    return load_preprocessors(folder, trust_remote_code=trust_remote_code)


def load_tokenizer(path: Path | str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer in a model directory or tokenizer folder, or a one-line error."""
    folder = Path(path)
    if folder.is_dir() and not has_tokenizer_files(folder):
        raise SatcliError(
            f"{folder} holds no tokenizer files ({', '.join(TOKENIZER_FILES)}, ...); pass a tokenizer folder "
            "with --tokenizer PATH"
        )
    return _from_pretrained("AutoTokenizer", "a tokenizer", path, trust_remote_code)


def load_image_processor(path: Path | str, *, trust_remote_code: bool = False) -> Any:
    """The image processor in a model directory, or a one-line error."""
    return _from_pretrained("AutoImageProcessor", "an image processor", path, trust_remote_code)


def _from_pretrained(auto_class: str, what: str, path: Path | str, trust_remote_code: bool) -> Any:
    """`transformers.<auto_class>.from_pretrained` on local files only; any failure as a one-line error."""
    transformers = require("transformers", "hf")
    with _quiet_transformers(transformers):
        try:
            return getattr(transformers, auto_class).from_pretrained(
                Path(path), local_files_only=True, trust_remote_code=trust_remote_code
            )
        except Exception as exc:
            raise SatcliError(f"cannot load {what} from {path}: {_reason(exc, whole=True, limit=600)}") from None


def _model_class(transformers: ModuleType, config: Any, trust_remote_code: bool) -> Any:
    """The task-head class named in config.architectures, else AutoModel (the base model)."""
    auto_map = getattr(config, "auto_map", None) or {}
    for name in getattr(config, "architectures", None) or []:
        found = getattr(transformers, name, None)
        if isinstance(found, type) and issubclass(found, transformers.PreTrainedModel):
            return found
        if trust_remote_code:
            for auto_name, target in auto_map.items():
                if str(target).rsplit(".", 1)[-1] == name and hasattr(transformers, auto_name):
                    return getattr(transformers, auto_name)
    return transformers.AutoModel


def _check_bin_weights(folder: Path) -> None:
    """Refuse pytorch_model*.bin files that hold more than tensors, before transformers opens them."""
    for path in sorted(folder.glob("*.bin")):
        try:
            with _quiet_torch():
                # mmap keeps the check cheap; files in torch's pre-1.6 (non-zip) format cannot be mapped.
                torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
            detail = f" ({found.group(1)})" if found else ""
            raise SatcliError(
                f"{path} holds pickled Python objects{detail}, which can run arbitrary code when loaded; "
                "re-save the model with save_pretrained (safetensors)"
            ) from None
        except Exception as exc:
            raise SatcliError(f"cannot read {path} as PyTorch weights: {_reason(exc)}") from None


def _load_failure(folder: Path, exc: Exception) -> str:
    text = str(exc)
    if "trust_remote_code" in text:
        return f"{folder} needs Python code shipped with the model to load; allow remote code only if you trust it"
    return f"cannot load {folder} as a Hugging Face model: {_reason(exc)}"


@contextlib.contextmanager
def _quiet_transformers(transformers: ModuleType) -> Iterator[None]:
    """No load reports, warnings or progress bars from transformers on the user's terminal."""
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with _quiet_torch():
            yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()
