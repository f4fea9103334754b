"""A minimal data-flow graph of one forward pass, built three ways (hooks, torch.export graph, TorchScript).

Each ``Node`` is one operation: its short op name, the nodes that produced its data inputs (parameters
and buffers are not data), its output shape where known, the tracked layer it is the output of, and the
BatchNorm parameters it applies. ``Call`` records a tracked layer call with the node that fed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from satcli.errors import SatcliError
from satcli.taps import layer_kind
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


@dataclass(frozen=True)
class Call:
    """A tracked layer call, in forward order, and the node its input came from."""

    layer: str
    source: Node


def op_name(target: object) -> str:
    """A short, normalised op name: 'aten.relu_.default' / 'aten::relu_' / '__iadd__' -> 'relu' / 'iadd'."""
    text = getattr(target, "__name__", None) if not isinstance(target, str) else target
    text = str(text or target)
    text = text.replace("aten::", "").replace("prim::", "").replace("aten.", "")
    if "." in text:
        text = text.split(".")[0]
    return text.strip("_")


def _shape(value: object) -> tuple[int | None, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)


def _bn(name: str, tensors: list[torch.Tensor | None], eps: float) -> BatchNorm | None:
    """BatchNorm from (weight, running_var): None when the running variance is missing (batch statistics)."""
    weight, var = tensors
    if var is None:
        return None
    return BatchNorm(name, None if weight is None else as_float64(weight), as_float64(var), float(eps))


# --- plain nn.Module: one forward pass under a TorchFunctionMode plus module hooks ------------------


class _Recorder(TorchFunctionMode):
    """Records, for every torch function call, which earlier node produced each tensor argument."""

    def __init__(self, weights: set[int]) -> None:
        super().__init__()
        self.producer: dict[int, Node] = {}
        self.keep: list[object] = []
        self.weights = weights
        self.bn_names: dict[int, str] = {}

    def node_of(self, t: torch.Tensor) -> Node:
        return self.producer.get(id(t)) or Node("unknown", shape=_shape(t))

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        data = [a for a in _tensors(args, kwargs) if id(a) not in self.weights]
        if not data:
            return out
        name = op_name(func)
        node = Node(name, tuple(self.node_of(a) for a in data), _shape(out if not isinstance(out, tuple) else out[0]))
        if name == "batch_norm":
            node.bn = self._batch_norm(args, kwargs)
        for result in out if isinstance(out, tuple | list) else (out,):
            if isinstance(result, torch.Tensor):
                self.producer[id(result)] = node
                self.keep.append(result)
        return out

    def _batch_norm(self, args: tuple, kwargs: dict[str, Any]) -> BatchNorm | None:
        names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
        bound = dict(zip(names, args, strict=False)) | kwargs
        if bound.get("training"):
            return None
        var = bound.get("running_var")
        label = self.bn_names.get(id(var), "batch_norm")
        return _bn(label, [bound.get("weight"), var], bound.get("eps", 1e-5))


def _tensors(args: tuple, kwargs: dict[str, Any]) -> Iterator[torch.Tensor]:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, list | tuple):
            yield from (v for v in value if isinstance(v, torch.Tensor))


@contextmanager
def _layer_hooks(module: nn.Module, rec: _Recorder, calls: list[Call]) -> Iterator[None]:
    handles = []

    def pre(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            calls.append(Call(name, rec.node_of(first) if first is not None else Node("unknown")))

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            value = out[0] if isinstance(out, tuple) else out
            if isinstance(value, torch.Tensor):
                rec.producer[id(value)] = Node("layer", (), _shape(value), layer=name)
                rec.keep.append(value)

        return hook

    try:
        for name, sub in module.named_modules():
            if name and layer_kind(sub) is not None:
                handles.append(sub.register_forward_pre_hook(pre(name)))
                handles.append(sub.register_forward_hook(post(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def trace_module(module: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> list[Call]:
    """Tracked layer calls of one forward pass on a batch of two random inputs of ``input_shape``."""
    weights = {id(t) for t in named_tensors(module).values()}
    rec = _Recorder(weights)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.running_var is not None:
            rec.bn_names[id(sub.running_var)] = name
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else device
    x = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x.to(device=device, dtype=dtype)
    rec.producer[id(x)] = Node("input", shape=_shape(x))
    calls: list[Call] = []
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), _layer_hooks(module, rec, calls), rec:
            module(x)
    except SatcliError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SatcliError(f"one forward pass on an input of shape {tuple(x.shape)} failed: {reason}") from None
    finally:
        module.train(was_training)
    return calls


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
            made[fx] = Node("input", shape=_shape(fx.meta.get("val")))
        if fx.op != "call_function":
            continue
        inputs = tuple(made[a] for a in fx.all_input_nodes if a in made)
        layer = _fx_layer(fx)
        if layer is not None:
            calls.append(Call(layer, made.get(fx.args[0]) or Node("unknown")))  # type: ignore[arg-type]
            made[fx] = Node("layer", (), _shape(fx.meta.get("val")), layer=layer)
            continue
        node = Node(op_name(fx.target), inputs, _shape(fx.meta.get("val")))
        if node.op in BN_OPS:
            node.bn = _fx_batch_norm(fx, tensors)
        made[fx] = node
    return calls


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
    return _bn(label, [weight, var], float(eps))  # type: ignore[arg-type]


# --- TorchScript ------------------------------------------------------------------------------------


def _attr_path(value: torch._C.Value) -> str | None:
    parts = []
    node = value.node()
    while node.kind() == "prim::GetAttr":
        parts.append(node.s("name"))
        node = node.input().node()
    return ".".join(reversed(parts)) if parts and node.kind() == "prim::Param" else None


def script_calls(sm: torch.jit.ScriptModule) -> list[Call]:
    """Tracked layer calls of a TorchScript module's inlined graph (top level; shapes are not known)."""
    graph = sm.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    tensors = named_tensors(sm)
    made: dict[int, Node] = {}
    inputs = list(graph.inputs())
    if len(inputs) > 1:
        made[inputs[1].unique()] = Node("input")
    calls: list[Call] = []
    for ts in graph.nodes():
        kind = op_name(ts.kind())
        ins = list(ts.inputs())
        feeders = _script_inputs(ins, made)
        if kind in LAYER_OPS and len(ins) > 1 and (_attr_path(ins[1]) or "").endswith(".weight"):
            layer = str(_attr_path(ins[1]))[: -len(".weight")]
            calls.append(Call(layer, made.get(ins[0].unique()) or Node("unknown")))
            made[ts.output().unique()] = Node("layer", shape=_script_shape(ts.output()), layer=layer)
            continue
        if not feeders:
            continue
        node = Node(kind, feeders, _script_shape(ts.output()))
        if kind == "flatten":
            node.meta["dims"] = tuple(i.toIValue() for i in ins[1:3])
        elif kind in ("view", "reshape") and _flat_view(ins):
            node.meta["dims"] = (1, -1)
        if kind in BN_OPS:
            path = [_attr_path(v) for v in ins[1:5]]
            found = [tensors.get(p) if p else None for p in path]
            var_path = path[3] or "batch_norm"
            label = var_path.rsplit(".", 1)[0]
            node.bn = None if ins[5].toIValue() else _bn(label, [found[0], found[3]], ins[7].toIValue())
        for out in ts.outputs():
            if _carries_tensors(out):
                made[out.unique()] = node
    return calls


def _script_shape(value: torch._C.Value) -> tuple[int | None, ...] | None:
    """The shape a traced graph recorded for a value (scripted graphs do not record one)."""
    kind = value.type().kind()
    sizes = value.type().sizes() if kind == "TensorType" else None
    return tuple(sizes) if sizes else None


def _flat_view(ins: list[torch._C.Value]) -> bool:
    """x.view(B, -1) / x.reshape(B, -1): a shape list of two whose last entry is the constant -1."""
    if len(ins) < 2 or ins[1].node().kind() != "prim::ListConstruct":
        return False
    dims = list(ins[1].node().inputs())
    return len(dims) == 2 and dims[1].node().kind() == "prim::Constant" and dims[1].toIValue() == -1


def _carries_tensors(value: torch._C.Value) -> bool:
    kind = value.type().kind()
    if kind == "ListType":
        return value.type().getElementType().kind() == "TensorType"
    return kind == "TensorType"


def _script_inputs(ins: list[torch._C.Value], made: dict[int, Node]) -> tuple[Node, ...]:
    found: list[Node] = []
    for value in ins:
        node = made.get(value.unique())
        if node is None:
            continue
        found.extend(node.inputs if node.op == "ListConstruct" else (node,))
    return tuple(found)
