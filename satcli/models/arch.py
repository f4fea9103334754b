"""The architecture registry: build an untrained module from torchvision:NAME, timm:NAME or package.module:factory."""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
from collections.abc import Mapping, Sequence

import torch

from satcli.errors import SatcliError
from satcli.importpath import import_from
from satcli.models.hf import require
from satcli.models.util import _kwargs_text, _reason


def parse_arch_kwargs(items: Sequence[str]) -> dict[str, object]:
    """Parse KEY=VALUE strings; values are Python literals when they parse as one, else plain strings."""
    kwargs: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SatcliError(f"bad architecture argument {item!r}; expected KEY=VALUE, e.g. num_classes=10")
        if key in kwargs:
            raise SatcliError(f"architecture argument {key!r} is given more than once")
        try:
            kwargs[key] = ast.literal_eval(raw.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            kwargs[key] = raw
    return kwargs


def build_arch(arch: str, kwargs: Mapping[str, object]) -> torch.nn.Module:
    """Instantiate an untrained architecture from "torchvision:NAME", "timm:NAME" or "package.module:callable"."""
    source, sep, name = arch.partition(":")
    if not sep and _is_torchvision_name(arch.strip()):  # a bare torchvision name, as the README calls --arch
        return _build_torchvision(arch.strip(), dict(kwargs))
    if not sep or not source.strip() or not name.strip():
        raise SatcliError(f"bad architecture {arch!r}; use torchvision:NAME, timm:NAME or package.module:callable")
    source, name = source.strip(), name.strip()
    if source == "torchvision":
        return _build_torchvision(name, dict(kwargs))
    if source == "timm":
        return _build_timm(name, dict(kwargs))
    return _build_from_factory(arch, source, name, dict(kwargs))


def _is_torchvision_name(name: str) -> bool:
    import torchvision

    return name in torchvision.models.list_models()


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


def _build_timm(name: str, kwargs: dict[str, object]) -> torch.nn.Module:
    timm = require("timm", "timm", f"timm:{name}")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        raise SatcliError(f"unknown timm model {name!r}; {hint}")
    for key in ("pretrained", "pretrained_cfg_overlay", "checkpoint_path"):
        value = kwargs.pop(key, None)
        if value:
            raise SatcliError(f"{key}={value!r} would load other weights; weights come from the model file")
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except Exception as exc:
        raise SatcliError(f"cannot build timm:{name}{_kwargs_text(kwargs)}: {_reason(exc)}") from None


def _build_from_factory(arch: str, module_name: str, attr_path: str, kwargs: dict[str, object]) -> torch.nn.Module:
    import_from()
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise SatcliError(f"cannot import {module_name!r} for architecture {arch}: {_reason(exc)}") from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise SatcliError(f"architecture {arch}: {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        raise SatcliError(f"architecture {arch}: {attr_path!r} is not callable")
    try:
        module = target(**kwargs)
    except Exception as exc:
        raise SatcliError(f"architecture {arch}{_kwargs_text(kwargs)} failed: {_reason(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SatcliError(f"architecture {arch} returned {type(module).__name__}, not a torch.nn.Module")
    return module
