"""Writing a rendered file: checked before any work, replaced whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from satcli.errors import SatcliError


def check_output_dir(output: Path) -> None:
    """Refuse, before any work, an output path whose folder does not exist."""
    if not output.parent.is_dir():
        raise SatcliError(f"cannot write {output}: directory {output.parent} does not exist")


def replace_file(output: Path, write: Callable[[Path], object]) -> Path:
    """Let `write` fill a temp file beside `output`, then rename it: a failed write leaves no half-written file."""
    temp = output.with_name(f".{output.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        write(temp)
        os.replace(temp, output)
    except OSError as exc:
        raise SatcliError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return output


def write_text(output: Path, text: str) -> Path:
    """`text` as UTF-8 at `output`, replaced whole."""
    return replace_file(output, lambda temp: temp.write_text(text, encoding="utf-8"))
