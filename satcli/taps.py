"""Layer taps: find the tracked layers of a model and capture their outputs batch by batch.

Three kinds of model are tapped three ways, behind one interface (``open_taps``):
plain ``nn.Module`` with forward hooks; torch.export graphs (hooks do not fire inside them) by inserting
tap nodes after each tracked module's output node, found through ``nn_module_stack`` metadata; and
TorchScript (which refuses hooks) by rewriting a copy of its inlined graph to also return the outputs.
Taps are always removed and the model's train/eval mode restored, also when a forward pass fails.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from satcli.errors import SatcliError

CONV, DENSE, RECURRENT = "conv", "dense", "recurrent"
TRACKED: dict[str, str] = {
    "Conv1d": CONV,
    "Conv2d": CONV,
    "Conv3d": CONV,
    "Linear": DENSE,
    "LSTM": RECURRENT,
    "GRU": RECURRENT,
}
CONV_METHODS = ("mean", "max", "channelwise")
SEQUENCE_METHODS = ("mean", "last", "tokens")


@dataclass(frozen=True)
class Layer:
    """A tracked layer: module path, class name, kind, output width and forward order (first call)."""

    name: str
    type: str
    kind: str
    width: int | None = None
    order: int | None = None
    batch_first: bool = True


@dataclass(frozen=True)
class Reduction:
    """How a layer output becomes samples of a d-dimensional vector (METHOD.md sec. 1 table)."""

    conv_method: str = "mean"
    sequence_method: str = "mean"

    def __post_init__(self) -> None:
        if self.conv_method not in CONV_METHODS:
            raise SatcliError(f"--conv-method must be one of {', '.join(CONV_METHODS)}, got {self.conv_method!r}")
        if self.sequence_method not in SEQUENCE_METHODS:
            raise SatcliError(
                f"--sequence-method must be one of {', '.join(SEQUENCE_METHODS)}, got {self.sequence_method!r}"
            )

    def name_for(self, layer: Layer, output_ndim: int) -> str:
        """The reduction applied to this layer's output ('none' for plain (B, d) outputs)."""
        if layer.kind == CONV:
            return self.conv_method
        return "none" if output_ndim == 2 and layer.kind == DENSE else self.sequence_method


def layer_kind(module: nn.Module) -> tuple[str, str] | None:
    """(class name, kind) of a tracked module, or None. Subclasses count as their tracked base."""
    for base in type(module).__mro__:
        if base.__module__.startswith("torch.nn") and base.__name__ in TRACKED:
            return type(module).__name__, TRACKED[base.__name__]
    return None


def as_sequence(t: torch.Tensor, layer: Layer) -> torch.Tensor:
    """A dense or recurrent output of 3+ dims as (B, T, d), batch first."""
    if layer.kind == RECURRENT and not layer.batch_first:
        t = t.transpose(0, 1)
    return t.reshape(t.shape[0], -1, t.shape[-1])


def reduce_output(t: torch.Tensor, layer: Layer, reduction: Reduction) -> torch.Tensor:
    """Turn one layer output into (samples, d) rows for the covariance."""
    samples = sample_view(t, layer, reduction)
    return samples.reshape(-1, samples.shape[-1])


def sample_view(t: torch.Tensor, layer: Layer, reduction: Reduction) -> torch.Tensor:
    """The covariance samples of one output as a (B, ..., d) tensor, every leading index one sample.

    Same samples as ``reduce_output`` without its final reshape, so channelwise and token samples stay
    views of the output (channels-last for convolutions) instead of being copied.
    """
    if layer.kind == CONV:
        if t.ndim < 3:
            raise SatcliError(f"layer '{layer.name}' ({layer.type}) gave an unbatched output of shape {tuple(t.shape)}")
        spatial = tuple(range(2, t.ndim))
        if reduction.conv_method == "mean":
            return t.mean(dim=spatial)
        if reduction.conv_method == "max":
            return t.amax(dim=spatial)
        return t.movedim(1, -1)
    if t.ndim == 2 and layer.kind == DENSE:
        return t
    if t.ndim < 2:
        raise SatcliError(f"layer '{layer.name}' ({layer.type}) gave an unbatched output of shape {tuple(t.shape)}")
    seq = as_sequence(t, layer)
    if reduction.sequence_method == "mean":
        return seq.mean(dim=1)
    if reduction.sequence_method == "last":
        return seq[:, -1]
    return seq


def input_rows(t: torch.Tensor, samples: torch.Tensor, layer: Layer) -> torch.Tensor:
    """One row per input for the store from ``sample_view``'s samples: themselves, or the mean of an input's
    samples. Always a new tensor, never a view of the output (which the model may still change in place)."""
    if samples.ndim == 2:
        rows = samples
    elif layer.kind == CONV:
        rows = t.mean(dim=tuple(range(2, t.ndim)))  # channelwise: pool the contiguous NCHW output directly
    else:
        rows = samples.mean(dim=tuple(range(1, samples.ndim - 1)))
    if rows.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        rows = rows.clone()
    return rows


def pooled_per_input(t: torch.Tensor, samples: torch.Tensor, layer: Layer, batch: int) -> torch.Tensor:
    """One row per input for the store: the samples themselves, or their mean when an input gives many."""
    if samples.shape[0] == batch:
        return samples
    return samples.reshape(batch, -1, samples.shape[-1]).mean(dim=1)


def output_width(t: torch.Tensor, layer: Layer) -> int:
    """Width d of a layer output: channels for convolutions, the last dim otherwise."""
    return int(t.shape[1] if layer.kind == CONV else t.shape[-1])


def select(layers: Sequence[Layer], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Layer]:
    """Layers whose names match any --layers glob (all when none given) and no --exclude glob."""
    chosen = [
        layer
        for layer in layers
        if (not include or any(fnmatch.fnmatchcase(layer.name, p) for p in include))
        and not any(fnmatch.fnmatchcase(layer.name, p) for p in exclude)
    ]
    return chosen


Captured = list[tuple[Layer, torch.Tensor]]
# Called with each tracked output the moment it is produced (inside the forward pass).
Sink = Callable[[Layer, torch.Tensor], None]
Runner = Callable[[torch.Tensor, Sink], None]


class _SinkError(SatcliError):
    """Carries an exception raised by a sink through the runners' error translation, unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Taps:
    """Runs a model on a batch and hands every tracked output, in execution order, to a sink or a list."""

    def __init__(self, layers: list[Layer], run: Runner) -> None:
        self._declared = layers
        self._run = run
        self._fixed: dict[str, Layer] = {}
        self.layers: list[Layer] = []

    def forward(self, x: torch.Tensor) -> Captured:
        """Run one batch and return its outputs. The first batch fixes forward order and widths."""
        captured: Captured = []
        # Copies: the model may still change an output in place (e.g. ReLU(inplace=True)) after its tap.
        self.stream(x, lambda layer, t: captured.append((layer, t.clone())))
        return captured

    def stream(self, x: torch.Tensor, sink: Sink) -> None:
        """Run one batch, calling ``sink(layer, output)`` inside the forward pass as each output appears.

        The sink sees an output before any later (possibly in-place) operation of the model changes it,
        and it must not keep the tensor beyond the call unless it copies it. The first batch fixes forward
        order and widths; a layer that did not run in it is ignored afterwards.
        """
        first = not self.layers
        fixed = self._fixed

        def tap(layer: Layer, t: torch.Tensor) -> None:
            known = fixed.get(layer.name)
            if known is None:
                if not first:
                    return
                known = fixed[layer.name] = replace(layer, width=output_width(t, layer), order=len(fixed))
            try:
                sink(known, t)
            except Exception as exc:
                raise _SinkError(exc) from exc

        try:
            self._run(x, tap)
        except _SinkError as exc:
            raise exc.error from None
        finally:
            if first:
                self.layers = list(fixed.values())
        if first and not self.layers:
            raise SatcliError("no tracked layer ran in the forward pass (check --layers / --exclude)")


def discover(module: nn.Module | torch.jit.ScriptModule) -> list[Layer]:
    """Tracked layers without running the model: registration or graph order, widths where known."""
    if isinstance(module, torch.jit.ScriptModule):
        return _unique([layer for layer, _ in _script_tapped_values(module)[1]])
    if isinstance(module, torch.fx.GraphModule) and _graph_groups(module):
        return _unique([layer for layer, _ in _graph_groups(module)])
    layers = []
    for name, sub in module.named_modules():
        found = layer_kind(sub)
        if found is not None:
            layers.append(Layer(name, found[0], found[1], _module_width(sub), None, getattr(sub, "batch_first", True)))
    return layers


@contextmanager
def open_taps(
    module: nn.Module | torch.jit.ScriptModule, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[Taps]:
    """Tap the selected layers of a model for the duration of the block; always untaps and restores mode."""
    declared = discover(module)
    chosen = select(declared, include, exclude)
    if not chosen:
        what = "no trackable layers (Conv1d/2d/3d, Linear, LSTM, GRU)" if not declared else "no layer matches"
        raise SatcliError(f"{what} in the model{_pattern_note(include, exclude)}")
    wanted = {layer.name for layer in chosen}
    was_training = module.training
    _set_training(module, False)
    try:
        if isinstance(module, torch.jit.ScriptModule):
            yield Taps(chosen, _script_runner(module, wanted))
        elif isinstance(module, torch.fx.GraphModule) and _graph_groups(module):
            with _graph_taps(module, wanted) as run:
                yield Taps(chosen, run)
        else:
            with _hook_taps(module, {layer.name: layer for layer in chosen}) as run:
                yield Taps(chosen, run)
    finally:
        _set_training(module, was_training)


def _set_training(module: nn.Module, mode: bool) -> None:
    # Exported graphs fix their mode at export time and refuse train()/eval().
    if isinstance(module, torch.fx.GraphModule) and _graph_groups(module):
        return
    module.train(mode)


def _unique(layers: list[Layer]) -> list[Layer]:
    """First occurrence of each layer name (a shared layer appears once per call in a graph)."""
    seen: dict[str, Layer] = {}
    for layer in layers:
        seen.setdefault(layer.name, layer)
    return list(seen.values())


def _pattern_note(include: Sequence[str], exclude: Sequence[str]) -> str:
    parts = [f"--layers {' '.join(include)}" if include else "", f"--exclude {' '.join(exclude)}" if exclude else ""]
    note = ", ".join(p for p in parts if p)
    return f" ({note})" if note else ""


def _module_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    if isinstance(module, nn.RNNBase):
        return module.hidden_size * (2 if module.bidirectional else 1)
    return None


# --- plain nn.Module: forward hooks -------------------------------------------------------------


def _expected_input(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = ", ".join(["H", "W", "D"][: len(module.kernel_size)])
        return f"(B, {module.in_channels}, {dims})"
    if isinstance(module, nn.Linear):
        return f"(B, ..., {module.in_features})"
    if isinstance(module, nn.RNNBase):
        return f"(B, T, {module.input_size})" if module.batch_first else f"(T, B, {module.input_size})"
    return None


def _shape_of(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, torch.Tensor):
            return str(tuple(a.shape))
    return "(no tensor)"


@contextmanager
def _hook_taps(module: nn.Module, chosen: dict[str, Layer]) -> Iterator[Runner]:
    sinks: list[Sink] = []
    entered: list[tuple[str, nn.Module, str]] = []
    handles = []

    def pre_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            entered.append((name, mod, _shape_of(args)))

        return hook

    def post_hook(layer: Layer) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, tuple):  # LSTM/GRU: (output, hidden)
                out = out[0]
            if not isinstance(out, torch.Tensor):
                raise SatcliError(f"layer '{layer.name}' ({layer.type}) returned {type(out).__name__}, not a tensor")
            sinks[-1](layer, out.detach())

        return hook

    try:
        for name, sub in module.named_modules():
            if name and _expected_input(sub) is not None:
                handles.append(sub.register_forward_pre_hook(pre_hook(name)))
            if name in chosen:
                handles.append(sub.register_forward_hook(post_hook(chosen[name])))

        def run(x: torch.Tensor, sink: Sink) -> None:
            entered.clear()
            sinks.append(sink)
            try:
                with torch.no_grad():
                    module(x)
            except SatcliError:
                raise
            except Exception as exc:
                raise _mismatch(exc, x, entered) from exc
            finally:
                sinks.pop()

        yield run
    finally:
        for handle in handles:
            handle.remove()


def _mismatch(exc: Exception, x: torch.Tensor, entered: list[tuple[str, nn.Module, str]]) -> SatcliError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if entered:
        name, mod, shape = entered[-1]
        expected = _expected_input(mod)
        return SatcliError(
            f"model and data do not fit: layer '{name}' ({type(mod).__name__}) expects input {expected} "
            f"but got {shape} (data batch {tuple(x.shape)}): {reason}"
        )
    return SatcliError(f"the forward pass failed on a data batch of shape {tuple(x.shape)}: {reason}")


# --- torch.export graphs: tap nodes ---------------------------------------------------------------

_RNN_OPS = ("aten.lstm", "aten.gru")


def _tracked_entry(node: torch.fx.Node) -> tuple[str, str, str] | None:
    """(stack key, module path, class name) of the innermost tracked module a graph node belongs to."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, (path, type_name) in reversed(list(stack.items())):
        cls = str(type_name).rsplit(".", 1)[-1]
        if cls in TRACKED and path:
            return key, str(path), cls
    return None


def _graph_groups(gm: torch.fx.GraphModule) -> list[tuple[Layer, torch.fx.Node]]:
    """Each call of a tracked module in an exported graph, with the node that carries its output."""
    groups: dict[str, list[torch.fx.Node]] = {}
    info: dict[str, tuple[str, str]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        entry = _tracked_entry(node)
        if entry is not None:
            groups.setdefault(entry[0], []).append(node)
            info[entry[0]] = (entry[1], entry[2])
    result = []
    for key, nodes in groups.items():
        path, cls = info[key]
        members = set(nodes)
        out = _group_output(nodes, members)
        if out is None:
            continue
        layer = Layer(path, cls, TRACKED[cls], None, None, _batch_first(nodes))
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
def _graph_taps(gm: torch.fx.GraphModule, wanted: set[str]) -> Iterator[Runner]:
    sinks: list[Sink] = []
    inserted: list[tuple[str, torch.fx.Node]] = []
    first_input = _first_layer_input(gm)
    try:
        for i, (layer, out) in enumerate(_graph_groups(gm)):
            if layer.name not in wanted:
                continue
            name = f"_satcli_tap_{i}"
            gm.add_submodule(name, _GraphTap(layer, sinks))
            with gm.graph.inserting_after(out):
                inserted.append((name, gm.graph.call_module(name, (out,))))
        gm.recompile()

        def run(x: torch.Tensor, sink: Sink) -> None:
            sinks.append(sink)
            try:
                with torch.no_grad():
                    gm(x)
            except SatcliError:
                raise
            except Exception as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                where = (
                    f"layer '{first_input[0]}' ({first_input[1]}) expects input {first_input[2]}"
                    if first_input
                    else ("the archive's input does not match")
                )
                raise SatcliError(
                    f"model and data do not fit: {where} but the data gives {tuple(x.shape)}: {reason}"
                ) from exc
            finally:
                sinks.pop()

        yield run
    finally:
        for name, node in inserted:
            gm.graph.erase_node(node)
            gm.delete_submodule(name)
        gm.recompile()


def _first_layer_input(gm: torch.fx.GraphModule) -> tuple[str, str, str] | None:
    """Name, class and expected input shape of the first tracked layer of an exported graph."""
    for layer, _out in _graph_groups(gm):
        for node in gm.graph.nodes:
            entry = _tracked_entry(node) if node.op == "call_function" else None
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


# --- TorchScript: a copy of the inlined graph that also returns the tracked outputs ---------------

_SCRIPT_OPS = {
    "aten::linear": "Linear",
    "aten::conv1d": "Conv1d",
    "aten::conv2d": "Conv2d",
    "aten::conv3d": "Conv3d",
    "aten::_convolution": "Conv",
}


def _attr_path(value: torch._C.Value) -> str | None:
    parts = []
    node = value.node()
    while node.kind() == "prim::GetAttr":
        parts.append(node.s("name"))
        value = node.input()
        node = value.node()
    if node.kind() != "prim::Param" or not parts:
        return None
    return ".".join(reversed(parts))


def _script_tapped_values(sm: torch.jit.ScriptModule) -> tuple[torch._C.Graph, list[tuple[Layer, torch._C.Value]]]:
    graph = sm.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    found = []
    for node in graph.nodes():  # top-level only: values inside if/loop blocks cannot be returned
        cls = _SCRIPT_OPS.get(node.kind())
        if cls is None:
            continue
        inputs = list(node.inputs())
        path = _attr_path(inputs[1]) if len(inputs) > 1 else None
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


def _script_runner(sm: torch.jit.ScriptModule, wanted: set[str]) -> Runner:
    graph, found = _script_tapped_values(sm)
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

    def run(x: torch.Tensor, sink: Sink) -> None:
        try:
            with torch.no_grad():
                outs = fn(sm._c, x)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            expected = ""
            if first is not None and f"{first.name}.weight" in weights:
                w = weights[f"{first.name}.weight"]
                expected = f"layer '{first.name}' ({first.type}) expects " + (
                    f"input (B, {w.shape[1]}, ...)" if first.kind == CONV else f"input (B, ..., {w.shape[1]})"
                )
            raise SatcliError(
                f"model and data do not fit: {expected or 'the model'} but the data gives {tuple(x.shape)}: {reason}"
            ) from exc
        for layer, t in zip(layers, outs[1:], strict=True):
            sink(layer, t.detach())

    return run
