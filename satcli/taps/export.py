"""torch.export graphs: hooks do not fire inside them, so tap nodes are inserted after each tracked
module's output node (found through nn_module_stack metadata) and removed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from satcli.errors import SatcliError, one_line
from satcli.taps.layers import (
    ATTENTION,
    CONV,
    TRACKED,
    Inputs,
    Layer,
    Runner,
    Sink,
    call_model,
    describe_inputs,
    layout_hint,
)

_RNN_OPS = ("aten.lstm", "aten.gru")


def tracked_entry(node: torch.fx.Node) -> tuple[str, str, str] | None:
    """(stack key, module path, class name) of the innermost tracked module a graph node belongs to."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, (path, type_name) in reversed(list(stack.items())):
        cls = str(type_name).rsplit(".", 1)[-1]
        if cls in TRACKED and path:
            return key, str(path), cls
    return None


def graph_groups(gm: torch.fx.GraphModule) -> list[tuple[Layer, torch.fx.Node]]:
    """Each call of a tracked module in an exported graph, with the node that carries its output."""
    groups: dict[str, list[torch.fx.Node]] = {}
    info: dict[str, tuple[str, str]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        entry = tracked_entry(node)
        if entry is not None:
            groups.setdefault(entry[0], []).append(node)
            info[entry[0]] = (entry[1], entry[2])
    result = []
    for key, nodes in groups.items():
        path, cls = info[key]
        members = set(nodes)
        out = _attention_output(nodes, members) if cls == ATTENTION else _group_output(nodes, members)
        if out is None:
            continue
        batch_first = _attention_batch_first(gm, out) if cls == ATTENTION else _batch_first(nodes)
        layer = Layer(path, cls, TRACKED[cls], None, None, batch_first)
        val = out.meta.get("val")
        if isinstance(val, torch.Tensor):
            width = val.shape[1] if layer.kind == CONV else val.shape[-1]
            layer = replace(layer, width=int(width) if isinstance(width, int) else None)
        result.append((layer, out))
    return result


def _group_output(nodes: list[torch.fx.Node], members: set[torch.fx.Node]) -> torch.fx.Node | None:
    for node in nodes:
        if any(str(node.target).startswith(op) for op in _RNN_OPS):
            for user in node.users:
                if user.args[1:] == (0,):
                    return user
    escaping = [n for n in nodes if any(u not in members for u in n.users)]
    return escaping[-1] if escaping else None


_VIEW_OPS = ("aten.view", "aten.transpose", "aten.reshape", "aten.permute", "aten.clone", "aten._unsafe_view")
_PROJECTION_OPS = ("aten.linear", "aten.addmm", "aten.mm", "aten.matmul", "aten.baddbmm")


def _attention_output(nodes: list[torch.fx.Node], members: set[torch.fx.Node]) -> torch.fx.Node | None:
    """MultiheadAttention's first output (out_proj's result, through views), not its averaged weights."""
    for node in nodes:
        if not any(u not in members for u in node.users):
            continue
        source = node
        while str(source.target).startswith(_VIEW_OPS) and isinstance(source.args[0], torch.fx.Node):
            source = source.args[0]
        if str(source.target).startswith(_PROJECTION_OPS):
            return node
    return None


def _attention_batch_first(gm: torch.fx.GraphModule, out: torch.fx.Node) -> bool:
    """Whether an attention output is (B, T, d): its first dim is the graph input's batch dim."""
    val = out.meta.get("val")
    inputs = (n for n in gm.graph.nodes if n.op == "placeholder" and isinstance(n.meta.get("val"), torch.Tensor))
    first = next(inputs, None)
    batch = first.meta["val"].shape[0] if first is not None else None
    if not isinstance(val, torch.Tensor) or val.ndim != 3 or batch is None:
        return True
    return str(val.shape[0]) == str(batch) or str(val.shape[1]) != str(batch)


def _batch_first(nodes: list[torch.fx.Node]) -> bool:
    for node in nodes:
        if any(str(node.target).startswith(op) for op in _RNN_OPS) and len(node.args) > 8:
            return bool(node.args[8])
    return True


class _GraphTap(nn.Module):
    """A module inserted into an exported graph that hands one node's value to the recorder."""

    def __init__(self, layer: Layer, sinks: list[Sink]) -> None:
        super().__init__()
        self.layer = layer
        self.sinks = sinks

    def forward(self, value: torch.Tensor) -> None:
        self.sinks[-1](self.layer, value.detach())


@contextmanager
def modules_after_layers(
    gm: torch.fx.GraphModule, wanted: set[str], prefix: str, make: Callable[[Layer], nn.Module], *, rewire: bool
) -> Iterator[None]:
    """Call a new submodule ``make(layer)`` on the output node of every wanted layer of the graph; with
    `rewire`, the output's later uses read the submodule's result instead. All undone on exit."""
    inserted: list[tuple[str, torch.fx.Node, torch.fx.Node]] = []
    try:
        for i, (layer, out) in enumerate(graph_groups(gm)):
            if layer.name not in wanted:
                continue
            name = f"{prefix}{i}"
            gm.add_submodule(name, make(layer))
            with gm.graph.inserting_after(out):
                node = gm.graph.call_module(name, (out,))
            inserted.append((name, out, node))
            if rewire:
                out.replace_all_uses_with(node, delete_user_cb=lambda user, node=node: user is not node)
        gm.recompile()
        yield
    finally:
        for name, out, node in reversed(inserted):
            node.replace_all_uses_with(out)  # no uses unless rewired
            gm.graph.erase_node(node)
            gm.delete_submodule(name)
        gm.recompile()


@contextmanager
def graph_taps(gm: torch.fx.GraphModule, wanted: set[str]) -> Iterator[Runner]:
    sinks: list[Sink] = []
    first_input = _first_layer_input(gm)
    with modules_after_layers(gm, wanted, "_satcli_tap_", lambda layer: _GraphTap(layer, sinks), rewire=False):

        def run(x: Inputs, sink: Sink) -> None:
            fired: list[str] = []

            def tracking(layer: Layer, t: torch.Tensor) -> None:
                fired.append(layer.name)
                sink(layer, t)

            sinks.append(tracking)
            try:
                with torch.no_grad():
                    call_model(gm, x)
            except SatcliError:
                raise
            except Exception as exc:
                raise _mismatch(exc, x, fired, first_input) from exc
            finally:
                sinks.pop()

        yield run


def _mismatch(exc: Exception, x: Inputs, fired: list[str], first_input: tuple[str, str, str] | None) -> SatcliError:
    """Name where the graph failed: after the last tracked layer that ran, or before the first one (then an
    untracked op such as an Embedding or the graph's own input check failed, or the first layer itself)."""
    if fired:
        where = f"the forward pass failed after layer '{fired[-1]}' ran"
    elif first_input:
        name, type_, shape = first_input
        first = f"the first, '{name}' ({type_}) expects input {shape}"
        where = f"the forward pass failed before any tracked layer ran ({first})"
    else:
        where = "the forward pass failed"
    given = f"the data gives {describe_inputs(x)}"
    return SatcliError(f"model and data do not fit: {where}; {given}: {one_line(exc)}{layout_hint(x)}")


def _first_layer_input(gm: torch.fx.GraphModule) -> tuple[str, str, str] | None:
    """Name, class and expected input shape of the first tracked layer of an exported graph."""
    for layer, _out in graph_groups(gm):
        for node in gm.graph.nodes:
            entry = tracked_entry(node) if node.op == "call_function" else None
            if entry is None or entry[1] != layer.name:
                continue
            arg = node.args[0] if node.args else None
            val = arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None
            if isinstance(val, torch.Tensor):
                dims = tuple(d if isinstance(d, int) else "B" for d in val.shape)
                return layer.name, layer.type, "(" + ", ".join(str(d) for d in dims) + ")"
            return None
        return None
    return None
