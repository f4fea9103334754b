"""Tracked layers: which modules satcli measures, their kind, width, and selection by name globs."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

CONV, DENSE, RECURRENT = "conv", "dense", "recurrent"


TRACKED: dict[str, str] = {
    "Conv1d": CONV,
    "Conv2d": CONV,
    "Conv3d": CONV,
    "Linear": DENSE,
    "LSTM": RECURRENT,
    "GRU": RECURRENT,
    # Tracked through the module's first output, which is its out_proj's output: out_proj itself is called
    # functionally (F.multi_head_attention_forward), so no hook or graph node of its own ever sees it.
    "MultiheadAttention": DENSE,
}
ATTENTION = "MultiheadAttention"


# Dense layers outside torch.nn, by (module, class): transformers' Conv1D (GPT-2 and its relatives) is, despite
# its name, x @ W + b with W stored (in, out) and `nf` outputs; leaving it out would hide every GPT-2 block.
FOREIGN_DENSE = {("transformers.pytorch_utils", "Conv1D")}


@dataclass(frozen=True)
class Layer:
    """A tracked layer: module path, class name, kind, output width and forward order (first call)."""

    name: str
    type: str
    kind: str
    width: int | None = None
    order: int | None = None
    batch_first: bool = True


def layer_kind(module: nn.Module) -> tuple[str, str] | None:
    """(class name, kind) of a tracked module, or None. Subclasses count as their tracked base."""
    for base in type(module).__mro__:
        if base.__module__.startswith("torch.nn") and base.__name__ in TRACKED:
            return type(module).__name__, TRACKED[base.__name__]
        if (base.__module__, base.__name__) in FOREIGN_DENSE:
            return type(module).__name__, DENSE
    return None


def select(layers: Sequence[Layer], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Layer]:
    """Layers whose names match any --layers glob (all when none given) and no --exclude glob."""
    chosen = [
        layer
        for layer in layers
        if (not include or any(fnmatch.fnmatchcase(layer.name, p) for p in include))
        and not any(fnmatch.fnmatchcase(layer.name, p) for p in exclude)
    ]
    return chosen


def module_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    if isinstance(module, nn.RNNBase):
        return module.hidden_size * (2 if module.bidirectional else 1)
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    width = getattr(module, "nf", None)  # transformers' Conv1D
    return width if isinstance(width, int) and layer_kind(module) is not None else None


def unique(layers: list[Layer]) -> list[Layer]:
    """First occurrence of each layer name (a shared layer appears once per call in a graph)."""
    seen: dict[str, Layer] = {}
    for layer in layers:
        seen.setdefault(layer.name, layer)
    return list(seen.values())


def pattern_note(include: Sequence[str], exclude: Sequence[str]) -> str:
    parts = [f"--layers {' '.join(include)}" if include else "", f"--exclude {' '.join(exclude)}" if exclude else ""]
    note = ", ".join(p for p in parts if p)
    return f" ({note})" if note else ""


Captured = list[tuple[Layer, torch.Tensor]]


# Called with each tracked output the moment it is produced (inside the forward pass).
Sink = Callable[[Layer, torch.Tensor], None]


@dataclass(frozen=True)
class AffineInput:
    """The input of a tracked affine layer y = x W + b, handed beside its output: an analysis may measure y's
    moments through x's, exactly (core/affine.py). `weight` is W as (d_in, d_out), `bias` b or None."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None


class Tap(Protocol):
    """What a runner calls with each tracked output; hook runners add an affine layer's input."""

    def __call__(self, layer: Layer, out: torch.Tensor, source: AffineInput | None = None) -> None: ...


Runner = Callable[["Inputs", Tap], None]


def affine_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(W as (d_in, d_out), b) of a module whose output is exactly x W + b of its one input: nn.Linear and
    transformers' Conv1D themselves, with finite float32/float64 weights. Subclasses (quantized or adapted linears),
    parametrized modules and other dtypes (whose forward rounds far more) are not taken as affine."""
    kind = (type(module).__module__, type(module).__name__)
    if type(module) is nn.Linear:
        weight, bias = module.weight.T, module.bias
    elif kind in FOREIGN_DENSE:
        weight, bias = module.weight, getattr(module, "bias", None)
    else:
        return None
    if not isinstance(weight, torch.Tensor) or weight.dtype not in (torch.float32, torch.float64) or weight.is_meta:
        return None
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != weight.shape[1:]):
        return None
    with torch.no_grad():  # an inf weight makes the float32 outputs non-finite, not x W + b
        if not bool(torch.isfinite(weight).all()) or (bias is not None and not bool(torch.isfinite(bias).all())):
            return None
    return weight, bias


# A batch of model inputs: one tensor, or keyword tensors for models called as module(**inputs).
Inputs = torch.Tensor | dict[str, torch.Tensor]


def call_model(module: Callable[..., Any], x: Inputs) -> Any:
    """Run a module on positional or keyword inputs."""
    return module(**x) if isinstance(x, dict) else module(x)


def describe_inputs(x: Inputs) -> str:
    """The shape and dtype of a batch for error messages: (B, ...) float32 or {name: (B, T) int64, ...}.

    The dtype matters: float data given to an Embedding fails for its dtype, not its shape."""
    if isinstance(x, dict):
        return "{" + ", ".join(f"{key}: {_shape_dtype(value)}" for key, value in x.items()) + "}"
    return _shape_dtype(x)


def _shape_dtype(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def layout_hint(x: Inputs) -> str:
    """'; ...channels-last...' when a 4-D batch looks (N, H, W, C) rather than (N, C, H, W), else ''."""
    if isinstance(x, dict) or x.ndim != 4 or x.shape[-1] not in (1, 3, 4) or x.shape[1] in (1, 3, 4):
        return ""
    return "; the data look channels-last (N, H, W, C): arrays are used as given, so store them as (N, C, H, W)"
