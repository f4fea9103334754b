"""Turn a device spec into a usable torch.device."""

from __future__ import annotations

import re

import torch

from satcli.errors import SatcliError


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
        raise SatcliError(f"device {spec!r} requested but CUDA is not available here; run on the CPU")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise SatcliError(f"device {spec!r} does not exist; this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def _as_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        if device.type == "cpu":
            return torch.device("cpu")
        return resolve_device(str(device))
    return resolve_device(device)
