"""satcli: per-layer intrinsic dimensionality and saturation of PyTorch checkpoints.

Python API (imported on first use, so `import satcli` stays light): `analyze_model`, `Monitor`, `Result`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Monitor", "Result", "__version__", "analyze_model"]

if TYPE_CHECKING:
    from satcli.api import Monitor, Result, analyze_model

_API = {"analyze_model", "Monitor", "Result"}


def __getattr__(name: str) -> object:
    """PEP 562: load the Python API (and torch) only when one of its names is used."""
    if name in _API:
        from satcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'satcli' has no attribute {name!r}")
