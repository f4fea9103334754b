"""Tell checkpoint formats apart by file content, not by extension, and fingerprint files."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from satcli.errors import SatcliError
from satcli.models.util import _reason

FORMATS = ("export", "torchscript", "state_dict", "safetensors", "pickle", "hf")

_CHUNK = 1 << 20
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


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
