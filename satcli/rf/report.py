"""`satcli rf`: the receptive field of every tracked layer from the traced graph, and the border per input size.

The graph comes from satcli.weights.chain.layer_calls: an exported graph or a TorchScript graph is read
as it is; a plain module is run once on a random input of the first size (docs/method.md, "Receptive field
and input resolution").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from satcli.core.receptive import Field, merge, past_border
from satcli.errors import SatcliError
from satcli.rf.graph import node_fields
from satcli.taps import discover
from satcli.weights.chain import layer_calls
from satcli.weights.graph import Call, Node

Size = tuple[int, ...]


class NotSpatial(SatcliError):
    """The model has no convolution or pooling window: it has no receptive field to speak of."""


@dataclass(frozen=True)
class LayerField:
    """A tracked layer's receptive field (None per axis: the whole input) and its border flag per size."""

    name: str
    type: str
    field: Field
    past_border: tuple[bool, ...]


@dataclass(frozen=True)
class RfReport:
    """Receptive fields of a model's tracked layers in forward order, at the given input sizes."""

    sizes: tuple[Size, ...]
    layers: tuple[LayerField, ...]
    source: str
    notes: tuple[str, ...]

    def border_layers(self, size: Size) -> list[str]:
        """Layers past the border at ``size``: Richter et al. (2021) predict them to be the unproductive tail."""
        index = self.sizes.index(size)
        return [layer.name for layer in self.layers if layer.past_border[index]]


def parse_size(text: str) -> Size:
    """'32' -> (32,), '32x48' -> (32, 48): the input's spatial size, positive integers."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        size = ()
    if not size or any(s <= 0 for s in size):
        raise SatcliError(f"bad input size {text!r}; expected a positive integer like 32, or HxW like 32x48")
    return size


def per_axis(size: Size, axes: int) -> Size:
    """A size given as one number means the same on every spatial axis."""
    if len(size) == 1:
        return size * axes
    if len(size) != axes:
        raise SatcliError(f"input size {'x'.join(map(str, size))} has {len(size)} axes; the model has {axes}")
    return size


def rf_report(
    module: nn.Module | torch.jit.ScriptModule,
    sizes: Sequence[Size],
    input_shape: Sequence[int | None] | None = None,
) -> RfReport:
    """Receptive fields of ``module``'s tracked layers, with each layer's border flag at every size.

    ``input_shape`` is the per-sample shape (C, *spatial) when known (an exported program records it); a
    plain module otherwise runs once on C channels of its first convolution at the first size."""
    if not sizes:
        raise SatcliError("give at least one --input-size")
    shape = _trace_shape(module, sizes[0], input_shape)
    calls, source = layer_calls(module, shape, torch.device("cpu"))
    axes = _spatial_axes(calls, shape)
    full = tuple(per_axis(size, axes) for size in sizes)
    roots = [call.output or call.source for call in calls]
    fields = node_fields(roots, axes)
    kinds = {layer.name: layer.type for layer in discover(module)}
    by_layer: dict[str, list[Field]] = {}
    for call in calls:
        found = fields.get(id(call.output or call.source))
        if found is not None and (call.layer in kinds or not kinds):
            by_layer.setdefault(call.layer, []).append(found)
    if not by_layer:
        raise SatcliError("no tracked layer is reached from the model input; the receptive field needs a CNN")
    layers = tuple(
        LayerField(name, kinds.get(name, "layer"), merge(found), tuple(past_border(merge(found), s) for s in full))
        for name, found in by_layer.items()
    )
    return RfReport(full, layers, source, _notes(layers))


def _trace_shape(
    module: nn.Module | torch.jit.ScriptModule, size: Size, input_shape: Sequence[int | None] | None
) -> tuple[int, ...] | None:
    """(C, *spatial) for the one forward pass of a plain module; None when the graph is read, not run."""
    if isinstance(module, torch.jit.ScriptModule | torch.fx.GraphModule):
        return None
    if input_shape and all(isinstance(d, int) for d in input_shape) and len(input_shape) >= 2:
        channels = int(input_shape[0])  # type: ignore[arg-type]
        return (channels, *per_axis(size, len(input_shape) - 1))
    conv = next((m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if conv is None:
        raise NotSpatial("the model has no convolution: a receptive field needs a spatial (convolutional) model")
    axes = len(conv.kernel_size)
    return (conv.in_channels, *per_axis(size, axes))


def _spatial_axes(calls: list[Call], shape: tuple[int, ...] | None) -> int:
    """How many spatial axes the input has: from the first window in the graph (a model without any is refused)."""
    seen: set[int] = set()
    stack: list[Node] = [call.output or call.source for call in calls]
    axes: list[int] = []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.window is not None and node.window.kernel:
            axes.append(len(node.window.kernel))
        stack.extend(node.inputs)
    if not axes:
        raise NotSpatial("the model has no convolution or pooling window: a receptive field needs a spatial model")
    return len(shape) - 1 if shape is not None else axes[0]


def _notes(layers: Sequence[LayerField]) -> tuple[str, ...]:
    """Layers the recursion cannot follow: where a whole-input field starts, and what made it so."""
    notes: list[str] = []
    causes: dict[str, str] = {}
    for layer in layers:
        cause = layer.field.cause
        if cause is not None and cause not in causes:
            causes[cause] = layer.name
            scope = "sees the whole input" if layer.field.whole else "has a path that sees the whole input"
            notes.append(f"'{layer.name}' and later layers: {scope} ('{cause}' mixes every position)")
    return tuple(notes)
