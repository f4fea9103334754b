"""Load a checkpoint of any common PyTorch format into an eval-mode module on the chosen device.

Formats are told apart by file content, not by extension, and nothing that can run code on load
(pickled Python objects, compiled AOTInductor code) is loaded unless the caller trusts the file.

Modules: `detect` (format detection, file hashes), `safety` (pickle refusal, export archive checks),
`statedict` (finding state dicts, prefix stripping, strict loading), `arch` (the architecture registry),
`loaders` (load_model), `device` (device specs), `util` (error text and quiet loading), `hf` (Hugging Face
model directories, hf:ORG/NAME from the local cache, their tokenizers and image processors).
"""

from satcli.models.arch import build_arch, parse_arch_kwargs
from satcli.models.detect import FORMATS, file_sha256
from satcli.models.device import resolve_device
from satcli.models.hf import (
    config_vocab_size,
    is_hf_model_dir,
    load_image_processor,
    load_preprocessors,
    load_tokenizer,
    model_preprocessors,
    resolve_model_dir,
)
from satcli.models.loaders import LoadedModel, load_model

__all__ = [
    "FORMATS",
    "LoadedModel",
    "build_arch",
    "config_vocab_size",
    "file_sha256",
    "is_hf_model_dir",
    "load_image_processor",
    "load_model",
    "load_preprocessors",
    "load_tokenizer",
    "model_preprocessors",
    "parse_arch_kwargs",
    "resolve_device",
    "resolve_model_dir",
]
