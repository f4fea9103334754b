"""A minimal data-flow graph of one forward pass, built three ways (hooks, torch.export graph, TorchScript).

Each ``Node`` is one operation: its short op name, the nodes that produced its data inputs (parameters
and buffers are not data), its output shape where known, the tracked layer it is the output of, and the
BatchNorm parameters it applies. ``Call`` records a tracked layer call with the node that fed it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from satcli.weights.matrices import BatchNorm, as_float64, named_tensors

LAYER_OPS = ("linear", "conv1d", "conv2d", "conv3d", "convolution")
BN_OPS = frozenset({"batch_norm", "native_batch_norm_legit_no_training", "native_batch_norm"})


@dataclass(eq=False)
class Node:
    """One operation of the forward pass (see the module docstring)."""

    op: str
    inputs: tuple[Node, ...] = ()
    shape: tuple[int | None, ...] | None = None
    layer: str | None = None
    bn: BatchNorm | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # A sliding window (convolution or pooling): per spatial axis kernel, stride and dilation; None otherwise.
    window: Window | None = None


@dataclass(frozen=True)
class Window:
    """The spatial window of a convolution or pooling op (docs/method.md, receptive field); ``transposed``:
    a transposed convolution, whose window grows the map instead of sliding over it."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    transposed: bool = False


@dataclass(frozen=True)
class Call:
    """A tracked layer call, in forward order, and the node its input came from."""

    layer: str
    source: Node
    # The node of the layer's output, whose inputs lead back to ``source`` (None when it was not seen).
    output: Node | None = None


def op_name(target: object) -> str:
    """A short, normalised op name: 'aten.relu_.default' / 'aten::relu_' / '__iadd__' -> 'relu' / 'iadd'."""
    text = getattr(target, "__name__", None) if not isinstance(target, str) else target
    text = str(text or target)
    text = text.replace("aten::", "").replace("prim::", "").replace("aten.", "")
    if "." in text:
        text = text.split(".")[0]
    return text.strip("_")


def shape_of(value: object) -> tuple[int | None, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)


def batch_norm_from(name: str, tensors: list[torch.Tensor | None], eps: float) -> BatchNorm | None:
    """BatchNorm from (weight, running_var): None when the running variance is missing (batch statistics)."""
    weight, var = tensors
    if var is None:
        return None
    return BatchNorm(name, None if weight is None else as_float64(weight), as_float64(var), float(eps))


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONVOLUTION_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "transposed", "output_padding")
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation")
_AVG_POOL_ARGS = ("input", "kernel_size", "stride", "padding")


def window_of(op: str, args: Sequence[object], kwargs: dict[str, Any], weight: tuple[int, ...] | None) -> Window | None:
    """The window of a conv / pooling op from its arguments (tensors may stand as anything); None otherwise.

    ``weight`` is the convolution weight's shape (out, in, *kernel). Positional arguments follow the aten
    signatures, which ``torch.nn.functional`` shares; keyword arguments go by the same names."""
    if op.startswith("conv_transpose"):
        return Window((), (), (), transposed=True)
    if op in ("conv1d", "conv2d", "conv3d", "convolution"):
        names = _CONV_ARGS if op != "convolution" else _CONVOLUTION_ARGS
        bound = dict(zip(names, args, strict=False)) | kwargs
        if weight is None or len(weight) < 3:
            return None
        if bound.get("transposed"):
            return Window((), (), (), transposed=True)
        kernel = tuple(int(k) for k in weight[2:])
        return Window(kernel, _per_axis(bound.get("stride"), kernel, 1), _per_axis(bound.get("dilation"), kernel, 1))
    match = re.fullmatch(r"(max|avg)_pool([123])d(_with_indices)?", op)
    if match is None:
        return None
    bound = dict(zip(_POOL_ARGS if match[1] == "max" else _AVG_POOL_ARGS, args, strict=False)) | kwargs
    axes = (0,) * int(match[2])
    kernel = _per_axis(bound.get("kernel_size"), axes, 1)
    return Window(kernel, _per_axis(bound.get("stride"), kernel, None), _per_axis(bound.get("dilation"), axes, 1))


def _per_axis(value: object, like: tuple[int, ...], default: int | None) -> tuple[int, ...]:
    """An int or a list as one int per axis; a missing value (None, []) is ``default``, or ``like`` itself."""
    if value is None or (isinstance(value, list | tuple) and not value):
        return tuple(like) if default is None else (default,) * len(like)
    if isinstance(value, list | tuple):
        return tuple(int(v) for v in value) if len(value) == len(like) else (int(value[0]),) * len(like)
    return (int(value),) * len(like)  # type: ignore[call-overload]


# --- torch.export graphs -------------------------------------------------------------------------


def _fx_layer(node: torch.fx.Node) -> str | None:
    if op_name(node.target) not in LAYER_OPS or len(node.args) < 2:
        return None
    weight = node.args[1]
    if isinstance(weight, torch.fx.Node) and weight.op == "get_attr" and str(weight.target).endswith(".weight"):
        return str(weight.target)[: -len(".weight")]
    return None


def graph_calls(gm: torch.fx.GraphModule) -> list[Call]:
    """Tracked layer calls of an exported graph in graph (= forward) order."""
    tensors = named_tensors(gm)
    made: dict[torch.fx.Node, Node] = {}
    calls: list[Call] = []
    for fx in gm.graph.nodes:
        if fx.op == "placeholder":
            made[fx] = Node("input", shape=shape_of(fx.meta.get("val")))
        if fx.op != "call_function":
            continue
        inputs = tuple(made[a] for a in fx.all_input_nodes if a in made)
        source = fx.args[0] if fx.args else None
        if op_name(fx.target) == "getitem" and isinstance(source, torch.fx.Node) and source in made:
            made[fx] = made[source]  # an element of a tuple output (batch norm, max pool with indices)
            continue
        layer = _fx_layer(fx)
        window = _fx_window(fx, tensors)
        if layer is not None:
            fed = made.get(fx.args[0]) or Node("unknown")  # type: ignore[arg-type]
            made[fx] = Node("layer", (fed,), shape_of(fx.meta.get("val")), layer=layer, window=window)
            calls.append(Call(layer, fed, made[fx]))
            continue
        node = Node(op_name(fx.target), inputs, shape_of(fx.meta.get("val")), window=window)
        if node.op in BN_OPS:
            node.bn = _fx_batch_norm(fx, tensors)
        made[fx] = node
    return calls


def _fx_window(fx: torch.fx.Node, tensors: dict[str, torch.Tensor]) -> Window | None:
    """The window of a conv / pooling node; the weight's shape from its recorded value or the module's tensor."""
    weight = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("weight")
    shape = None
    if isinstance(weight, torch.fx.Node):
        shape = shape_of(weight.meta.get("val"))
        if shape is None and weight.op == "get_attr" and str(weight.target) in tensors:
            shape = tuple(tensors[str(weight.target)].shape)
    return window_of(op_name(fx.target), fx.args, dict(fx.kwargs), shape)  # type: ignore[arg-type]


def _fx_batch_norm(fx: torch.fx.Node, tensors: dict[str, torch.Tensor]) -> BatchNorm | None:
    """aten.batch_norm(input, weight, bias, mean, var, training, momentum, eps, ...) or the no-training form."""
    args = list(fx.args)

    def attr(value: object) -> torch.Tensor | None:
        return tensors.get(str(value.target)) if isinstance(value, torch.fx.Node) and value.op == "get_attr" else None

    if op_name(fx.target) == "native_batch_norm_legit_no_training":  # (input, w, b, mean, var, momentum, eps)
        weight, var, eps = attr(args[1]), attr(args[4]), args[6]
    else:
        if len(args) > 5 and args[5]:
            return None
        weight, var, eps = attr(args[1]), attr(args[4]), args[7] if len(args) > 7 else 1e-5
    label = str(args[4].target).rsplit(".", 1)[0] if isinstance(args[4], torch.fx.Node) else "batch_norm"
    return batch_norm_from(label, [weight, var], float(eps))  # type: ignore[arg-type]
