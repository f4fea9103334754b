"""TorchScript refuses hooks: a rewritten copy of the inlined graph also returns the tracked outputs."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from satcli.errors import SatcliError, one_line
from satcli.taps.layers import CONV, TRACKED, Inputs, Layer, Runner, Sink, describe_inputs, layout_hint

_SCRIPT_OPS = {
    "aten::linear": "Linear",
    "aten::conv1d": "Conv1d",
    "aten::conv2d": "Conv2d",
    "aten::conv3d": "Conv3d",
    "aten::_convolution": "Conv",
}


def attr_path(value: torch._C.Value) -> str | None:
    parts = []
    node = value.node()
    while node.kind() == "prim::GetAttr":
        parts.append(node.s("name"))
        value = node.input()
        node = value.node()
    if node.kind() != "prim::Param" or not parts:
        return None
    return ".".join(reversed(parts))


def script_tapped_values(sm: torch.jit.ScriptModule) -> tuple[torch._C.Graph, list[tuple[Layer, torch._C.Value]]]:
    graph = sm.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    found = []
    for node in graph.nodes():  # top-level only: values inside if/loop blocks cannot be returned
        cls = _SCRIPT_OPS.get(node.kind())
        if cls is None:
            continue
        inputs = list(node.inputs())
        path = attr_path(inputs[1]) if len(inputs) > 1 else None
        if path is None or not path.endswith(".weight"):
            continue
        if cls == "Conv":
            cls = {3: "Conv1d", 4: "Conv2d", 5: "Conv3d"}.get(_script_weight_ndim(sm, path), "Conv2d")
        found.append((Layer(path[: -len(".weight")], cls, TRACKED[cls], _script_width(sm, path)), node.output()))
    return graph, found


def _script_weight_ndim(sm: torch.jit.ScriptModule, path: str) -> int:
    return int(dict(sm.named_parameters())[path].ndim) if path in dict(sm.named_parameters()) else 4


def _script_width(sm: torch.jit.ScriptModule, path: str) -> int | None:
    params = dict(sm.named_parameters())
    return int(params[path].shape[0]) if path in params else None


def _mutates_in_place(nodes: Iterator[torch._C.Node]) -> bool:
    """True when a script graph (or any block in it) runs an in-place aten op such as relu_."""
    for node in nodes:
        kind = node.kind()
        if kind.startswith("aten::") and kind.endswith("_") and not kind.endswith("__"):
            return True
        if any(_mutates_in_place(block.nodes()) for block in node.blocks()):
            return True
    return False


def _cloned(graph: torch._C.Graph, found: list[tuple[Layer, torch._C.Value]]) -> list[tuple[Layer, torch._C.Value]]:
    """Return a copy of each tapped value (taken where it is produced), so later in-place ops cannot change it."""
    none = graph.create("prim::Constant")
    none.output().setType(torch._C.NoneType.get())
    none.insertBefore(next(iter(graph.nodes())))
    result = []
    for layer, value in found:
        clone = graph.create("aten::clone", [value, none.output()])
        clone.output().setType(value.type())
        clone.insertAfter(value.node())
        result.append((layer, clone.output()))
    return result


def script_runner(sm: torch.jit.ScriptModule, wanted: set[str]) -> Runner:
    graph, found = script_tapped_values(sm)
    found = [(layer, value) for layer, value in found if layer.name in wanted]
    if _mutates_in_place(graph.nodes()):
        found = _cloned(graph, found)
    ret = graph.return_node()
    original = next(iter(ret.inputs()))
    values = [original, *(value for _, value in found)]
    tup = graph.create("prim::TupleConstruct", values)
    tup.output().setType(torch._C.TupleType([v.type() for v in values]))
    tup.insertBefore(ret)
    ret.replaceInput(0, tup.output())
    fn = torch._C._create_function_from_graph("satcli_tapped_forward", graph)
    layers = [layer for layer, _ in found]
    first = layers[0] if layers else None
    weights = dict(sm.named_parameters())

    def run(x: Inputs, sink: Sink) -> None:
        try:
            with torch.no_grad():
                if isinstance(x, dict):
                    raise SatcliError("a TorchScript model takes one input tensor, not named inputs")
                outs = fn(sm._c, x)
        except Exception as exc:
            reason = one_line(exc, last=True)
            where = "the forward pass failed"
            if first is not None and f"{first.name}.weight" in weights:
                # Where in the graph it failed is unknown (an untracked op such as an Embedding may come
                # first), so the first tracked layer's input is a hint, not the culprit.
                w = weights[f"{first.name}.weight"]
                shape = f"(B, {w.shape[1]}, ...)" if first.kind == CONV else f"(B, ..., {w.shape[1]})"
                where += f" (the first tracked layer, '{first.name}' ({first.type}) expects input {shape})"
            raise SatcliError(
                f"model and data do not fit: {where}; the data gives {describe_inputs(x)}: {reason}{layout_hint(x)}"
            ) from exc
        for layer, t in zip(layers, outs[1:], strict=True):
            sink(layer, t.detach())

    return run
