"""satcli: per-layer intrinsic dimensionality and saturation of PyTorch checkpoints."""

__version__ = "0.1.0"
