"""Find the state dict in a checkpoint and load it strictly into an architecture, with readable mismatches."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeGuard

import torch

from satcli.errors import SatcliError
from satcli.models.arch import build_arch
from satcli.models.util import _count, _first, _reason

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
_STRIPPABLE_PREFIXES = ("model.", "module.")
_ARCH_HINT = "pass --arch torchvision:NAME, --arch timm:NAME or --arch package.module:factory"


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
        raise SatcliError(f"{path} does not match architecture {arch}: {'; '.join(problems)}")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise SatcliError(f"{path} does not match architecture {arch}: {_reason(exc)}") from None
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
