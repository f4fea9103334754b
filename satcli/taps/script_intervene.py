"""TorchScript refuses hooks: to replace tracked outputs, a rewritten copy of the inlined graph computes
``center + (z - center) @ matrix`` on each chosen output's channel vectors, with center and matrix passed
in as extra graph inputs. One graph per set of replaced layers, compiled on first use and cached."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch

from satcli.errors import ModelError
from satcli.taps.layers import CONV, Inputs, Layer
from satcli.taps.script import script_tapped_values


class AffineTransform(Protocol):
    """A replacement a TorchScript graph can run: ``z -> center + (z - center) @ matrix`` on every channel
    vector, as float64 tensors on `device`; calling it does the same in Python."""

    def __call__(self, layer: Layer, z: torch.Tensor) -> torch.Tensor: ...

    def affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]: ...


def script_replacer(
    sm: torch.jit.ScriptModule, layers: Sequence[Layer], device: torch.device
) -> Callable[[Inputs, Mapping[str, object]], object]:
    """A runner ``(x, transforms) -> model output`` with the named layers' outputs replaced affinely."""
    names = {layer.name for layer in layers}
    compiled: dict[tuple[str, ...], torch._C.ScriptFunction] = {}

    def run(x: Inputs, transforms: Mapping[str, object]) -> object:
        if isinstance(x, dict):
            raise ModelError("a TorchScript model takes one input tensor, not named inputs")
        chosen = tuple(sorted(transforms))
        extra: list[torch.Tensor] = []
        for name in chosen:
            affine = getattr(transforms[name], "affine", None)
            if affine is None or name not in names:
                raise ModelError(f"layer '{name}' of a TorchScript model can only take an affine replacement")
            extra.extend(affine(device))
        if chosen not in compiled:
            compiled[chosen] = _replaced_forward(sm, chosen)
        return compiled[chosen](sm._c, x, *extra)

    return run


def _replaced_forward(sm: torch.jit.ScriptModule, chosen: tuple[str, ...]) -> torch._C.ScriptFunction:
    """sm's forward with each chosen layer's output replaced; takes (center, matrix) per layer after its inputs."""
    graph, found = script_tapped_values(sm)
    where = {layer.name: (layer, value) for layer, value in found}
    missing = [name for name in chosen if name not in where]
    if missing:
        raise ModelError(f"layer '{missing[0]}' of the TorchScript model has no output its graph can replace")
    for name in chosen:
        center, matrix = graph.addInput(), graph.addInput()
        center.setType(torch._C.TensorType.get())
        matrix.setType(torch._C.TensorType.get())
        layer, value = where[name]
        _insert_affine(graph, value, center, matrix, layer.kind == CONV)
    return torch._C._create_function_from_graph("satcli_replaced_forward", graph)


def _insert_affine(
    graph: torch._C.Graph, value: torch._C.Value, center: torch._C.Value, matrix: torch._C.Value, conv: bool
) -> None:
    """Insert ``type_as(center + (z64 - center) @ matrix, z)`` right after `value` and use it instead."""
    producer = value.node()
    made: list[torch._C.Node] = []

    def op(kind: str, *args: torch._C.Value) -> torch._C.Value:
        out = graph.insert(kind, list(args))
        made.append(out.node())
        return out

    with graph.insert_point_guard(producer):  # constants land before the producer; ops are moved after it
        one, last = graph.insertConstant(1), graph.insertConstant(-1)
        z = op("aten::type_as", value, center)
        if conv:
            z = op("aten::movedim", z, one, last)
        z = op("aten::add", op("aten::matmul", op("aten::sub", z, center), matrix), center)
        if conv:
            z = op("aten::movedim", z, last, one)
        out = op("aten::type_as", z, value)
    previous = producer
    for node in made:
        node.moveAfter(previous)
        previous = node
    value.replaceAllUsesAfterNodeWith(out.node(), out)
