"""Load a checkpoint of any common PyTorch format into an eval-mode module on the chosen device.

Formats are told apart by file content, not by extension, and nothing that can run code on load
(pickled Python objects, compiled AOTInductor code) is loaded unless the caller trusts the file.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from satcli.errors import SatcliError
from satcli.importpath import import_from
from satcli.models.detect import _detect_format, file_sha256
from satcli.models.device import _as_device
from satcli.models.hf import _EXPECTED, HF_PREFIX, is_hf_model_dir, load_hf_model, model_dir_sha256, resolve_model_dir
from satcli.models.safety import _load_plain_pickle, _pickle_refusal, _unsafe_export_members
from satcli.models.statedict import _find_state_dict, _into_arch
from satcli.models.util import _first, _quiet_torch, _reason


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
    model_dir: Path | None = None
    model_class: str | None = None


def load_model(
    path: Path | str,
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, object] | None = None,
    trust_pickle: bool = False,
    device: str | torch.device = "auto",
    trust_remote_code: bool = False,
    download: bool = False,
) -> LoadedModel:
    """Load a checkpoint into an eval-mode module on `device`, detecting its format from its content.

    `path` is a checkpoint file, a Hugging Face model directory (config.json + weights), `hf:PATH`, or
    `hf:ORG/NAME` from the local Hugging Face cache (fetched only with `download=True`). Hugging Face
    models run code shipped with them only with `trust_remote_code=True`; their LoadedModel has format "hf",
    `model_dir` (where the tokenizer / image processor live) and `model_class`, and takes keyword inputs.
    """
    dev = _as_device(device)
    if str(path).startswith(HF_PREFIX) or (Path(path).is_dir() and is_hf_model_dir(Path(path))):
        return _load_hf(path, arch, dev, trust_remote_code, download)
    path = Path(path)
    if not path.exists():
        raise SatcliError(f"model file not found: {path}")
    if path.is_dir():
        raise SatcliError(f"{path} is a directory, not a model file; a Hugging Face model directory needs {_EXPECTED}")
    sha256 = file_sha256(path)
    kwargs = dict(arch_kwargs or {})
    kind = _detect_format(path)

    input_shape: tuple[int | None, ...] | None = None
    if kind == "export":
        if arch is not None:
            raise SatcliError(
                f"{path} is a torch.export archive and carries its own graph; give no architecture for it"
            )
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


def _load_hf(
    spec: Path | str, arch: str | None, dev: torch.device, trust_remote_code: bool, download: bool
) -> LoadedModel:
    folder = resolve_model_dir(spec, download=download)
    if arch is not None:
        raise SatcliError(f"{folder} is a Hugging Face model and carries its own architecture in config.json")
    module, class_name = load_hf_model(folder, dev, trust_remote_code=trust_remote_code)
    return LoadedModel(folder, model_dir_sha256(folder), "hf", module, dev, None, None, folder, class_name)


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
        import_from()  # the pickle's classes import from the current folder, as under python -m satcli
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
