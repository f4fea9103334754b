"""The data flow of a TorchScript module, from a copy of its inlined graph (top level; shapes where traced)."""

from __future__ import annotations

import torch

from satcli.taps.script import attr_path
from satcli.weights.graph import BN_OPS, LAYER_OPS, Call, Node, Window, batch_norm_from, op_name, window_of
from satcli.weights.matrices import named_tensors


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
        window = _script_window(kind, ins, tensors)
        if kind in LAYER_OPS and len(ins) > 1 and (attr_path(ins[1]) or "").endswith(".weight"):
            layer = str(attr_path(ins[1]))[: -len(".weight")]
            fed = made.get(ins[0].unique()) or Node("unknown")
            node = Node("layer", (fed,), _script_shape(ts.output()), layer=layer, window=window)
            calls.append(Call(layer, fed, node))
            made[ts.output().unique()] = node
            continue
        if not feeders:
            continue
        node = Node(kind, feeders, _script_shape(ts.output()), window=window)
        if kind == "flatten":
            node.meta["dims"] = tuple(i.toIValue() for i in ins[1:3])
        elif kind in ("view", "reshape") and _flat_view(ins):
            node.meta["dims"] = (1, -1)
        if kind in BN_OPS:
            path = [attr_path(v) for v in ins[1:5]]
            found = [tensors.get(p) if p else None for p in path]
            var_path = path[3] or "batch_norm"
            label = var_path.rsplit(".", 1)[0]
            node.bn = None if ins[5].toIValue() else batch_norm_from(label, [found[0], found[3]], ins[7].toIValue())
        for out in ts.outputs():
            if _carries_tensors(out):
                made[out.unique()] = node
    return calls


def _script_window(kind: str, ins: list[torch._C.Value], tensors: dict[str, torch.Tensor]) -> Window | None:
    """The window of a conv / pooling node from its constant arguments (the weight's shape from the module)."""
    if kind not in LAYER_OPS and "pool" not in kind and not kind.startswith("conv"):
        return None
    values = [_constant(value) for value in ins]
    path = attr_path(ins[1]) if len(ins) > 1 else None
    weight = tensors.get(path) if path else None
    return window_of(kind, values, {}, None if weight is None else tuple(weight.shape))


def _constant(value: torch._C.Value) -> object:
    """A constant argument's value (ints, int lists, bools), or None for a tensor or a computed value."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        items = [_constant(v) for v in node.inputs()]
        return items if all(isinstance(i, int) for i in items) else None
    return None


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
