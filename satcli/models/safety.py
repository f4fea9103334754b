"""Refuse anything that can run code on load (pickles, compiled code) unless the caller trusts the file."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch

from satcli.errors import SatcliError
from satcli.models.detect import _archive_relative
from satcli.models.util import _quiet_torch, _reason


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


def _load_plain_pickle(path: Path) -> object:
    """A pickle.dump file (not torch.save); only reached when the caller trusts the file."""
    try:
        with _quiet_torch(), open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as exc:
        raise SatcliError(f"cannot read {path} as a PyTorch model: {_reason(exc)}") from None


def _pickle_refusal(path: Path, what: str | None, *, archive: bool = False) -> str:
    detail = f" ({what})" if what else ""
    kind = "contains pickled Python objects or compiled code" if archive else "is a pickled Python object"
    return (
        f"{path} {kind}{detail}, which can run arbitrary code when loaded; re-save the model with "
        "torch.export.save, torch.jit.save or as a state_dict, or pass --trust-pickle if you trust the file"
    )
