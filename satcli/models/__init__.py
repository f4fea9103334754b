"""Load a checkpoint of any common PyTorch format into an eval-mode module on the chosen device.

Formats are told apart by file content, not by extension, and nothing that can run code on load
(pickled Python objects, compiled AOTInductor code) is loaded unless the caller trusts the file.

Modules: `detect` (format detection, file hashes), `safety` (pickle refusal, export archive checks),
`statedict` (finding state dicts, prefix stripping, strict loading), `arch` (the architecture registry),
`loaders` (load_model), `device` (device specs), `util` (error text and quiet loading).
"""

from satcli.models.arch import build_arch, parse_arch_kwargs
from satcli.models.detect import FORMATS, file_sha256
from satcli.models.device import resolve_device
from satcli.models.loaders import LoadedModel, load_model

__all__ = [
    "FORMATS",
    "LoadedModel",
    "build_arch",
    "file_sha256",
    "load_model",
    "parse_arch_kwargs",
    "resolve_device",
]
