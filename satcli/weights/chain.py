"""Which tracked layer feeds which (docs/method.md sec. 5): the SVR's chain of composing layer pairs.

The forward order and the data flow come from the model itself: an exported graph or a TorchScript graph
is read, a plain ``nn.Module`` is run once on a random input (``graph.trace_module``). Between two layers
only channel-preserving operations may stand (activations, dropout, pooling, a BatchNorm, a flatten);
anything else (a residual add, a concatenation, a reshape that is not a channel-major flatten) breaks the
chain there and the pair is skipped with the reason, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.taps import CONV, discover
from satcli.weights.graph import BN_OPS, Call, Node, graph_calls
from satcli.weights.matrices import BatchNorm, LayerWeight
from satcli.weights.script import script_calls
from satcli.weights.trace import TOKENS, token_vocab, trace_module, trace_tokens

_ACTIVATIONS = "relu relu6 gelu silu sigmoid tanh leaky_relu elu selu celu hardtanh hardswish hardsigmoid mish"
_OTHER_PASS = "softplus softsign threshold clone contiguous detach alias to type float double half identity pad"
_DROPOUT = "dropout feature_dropout alpha_dropout feature_alpha_dropout dropout1d dropout2d dropout3d"
_POOLS = " ".join(
    f"{kind}{d}d{tail}"
    for kind in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool")
    for d in (1, 2, 3)
    for tail in ("", "_with_indices")
)
PASS_OPS = frozenset(f"{_ACTIVATIONS} {_OTHER_PASS} {_DROPOUT} {_POOLS} constant_pad_nd interpolate".split())
RESHAPE_OPS = frozenset({"flatten", "view", "reshape", "unsafe_view", "squeeze", "unsqueeze"})
REDUCE_OPS = frozenset({"mean", "amax", "amin", "sum", "max", "min"})
_ADDS = frozenset({"add", "iadd", "sub", "isub", "radd", "rsub"})
_CATS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})


@dataclass(frozen=True)
class Link:
    """A composing pair: ``src`` feeds ``dst``; ``positions`` is z of a flatten (1 otherwise)."""

    src: str
    dst: str
    positions: int = 1
    flattened: bool = False
    bn: BatchNorm | None = None


@dataclass(frozen=True)
class Skip:
    """A pair (or a layer) left out of the SVR, with the reason."""

    src: str | None
    dst: str
    reason: str


@dataclass(frozen=True)
class Chain:
    """Layers in forward order, the composing pairs and the skipped ones, and where the order came from."""

    layers: list[str]
    links: list[Link]
    skipped: list[Skip]
    source: str


def resolve_input_shape(module: nn.Module, given: Sequence[int] | None) -> tuple[int, ...]:
    """The per-sample input shape for one forward pass: the given one, or a first Linear's."""
    if given:
        return tuple(int(d) for d in given)
    first = next(iter(discover(module)), None)
    try:
        sub = module.get_submodule(first.name) if first is not None else None
    except AttributeError:
        sub = None
    if isinstance(sub, nn.Linear):
        return (sub.in_features,)
    raise SatcliError("the layer order of this model needs one forward pass, but its per-sample input shape is unknown")


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,8,8' -> (1, 8, 8); positive integers only."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise SatcliError(f"bad input shape {text!r}; expected positive integers like 1,8,8 (C,H,W, no batch)")
    return shape


def layer_calls(
    module: nn.Module | torch.jit.ScriptModule, input_shape: Sequence[int] | None, device: torch.device
) -> tuple[list[Call], str]:
    """Tracked layer calls in forward order and a note on where they came from."""
    if isinstance(module, torch.jit.ScriptModule):
        return script_calls(module), "TorchScript graph"
    if isinstance(module, torch.fx.GraphModule):
        calls = graph_calls(module)
        if calls:
            return calls, "exported graph"
    vocab = token_vocab(module) if not input_shape else None
    if vocab is not None:
        return trace_tokens(module, vocab, device), f"one forward pass on {TOKENS} random token ids"
    shape = resolve_input_shape(module, input_shape)
    return trace_module(module, shape, device), f"one forward pass on input {shape}"


ATTENTION_REASON = "attention: q, k, v and out_proj meet in softmax(q k^T / sqrt(d)) v, which is not a composition"


def build_chain(calls: list[Call], weights: dict[str, LayerWeight], source: str, others: Sequence[str] = ()) -> Chain:
    """Pairs of consecutive composing layers from the calls; ``others`` are tracked layers without a matrix.

    An attention layer's matrices (``LayerWeight.owner``) are listed as layers, but no pair into, inside or
    out of the attention composes: each such pair is skipped and named.
    """
    parts: dict[str, list[str]] = {}
    for weight in weights.values():
        if weight.owner is not None:
            parts.setdefault(weight.owner, []).append(weight.name)
    layers = list(dict.fromkeys(n for c in calls for n in parts.get(c.layer, [c.layer]) if n in weights))
    links: dict[tuple[str, str], Link] = {}
    skipped: dict[tuple[str | None, str], Skip] = {
        (None, name): Skip(None, name, "recurrent layer: no single weight matrix") for name in others
    }
    skipped |= {(None, owner): Skip(None, owner, ATTENTION_REASON) for owner in parts}
    for call in calls:
        path, src, reason = _walk(call.source)
        if src is None:
            continue  # fed by the model input only: no layer before it
        key = (src, call.layer)
        if key in links or key in skipped:
            continue
        if reason is None and (src in parts or call.layer in parts):
            reason = ATTENTION_REASON
        if reason is None and (src not in weights or call.layer not in weights):
            reason = "recurrent layer: no single weight matrix"
        if reason is None:
            found = _compose(list(reversed(path)), weights[str(src)], weights[call.layer])
            if isinstance(found, Link):
                links[(str(src), call.layer)] = found
                continue
            reason = found
        skipped[key] = Skip(src, call.layer, reason)
    if not layers:
        raise SatcliError("no Linear or Conv layer with a weight matrix in the model")
    return Chain(layers, list(links.values()), list(skipped.values()), source)


def _walk(node: Node) -> tuple[list[Node], str | None, str | None]:
    """Nodes from a layer's input back to the layer before it (nearest first), that layer, or a reason."""
    path: list[Node] = []
    while node.layer is None:
        if node.op == "input":
            return path, None, None
        if node.op in _ADDS | _CATS and len(node.inputs) > 1:
            what = "residual add" if node.op in _ADDS else "concatenation"
            feeds = ", ".join(f"'{name or 'input'}'" for name in dict.fromkeys(map(_nearest_layer, node.inputs)))
            return path, _nearest_layer(node), f"{what} ('{node.op}') of {feeds} between the layers"
        known = node.op in PASS_OPS | RESHAPE_OPS | REDUCE_OPS | BN_OPS
        if len(node.inputs) != 1 or not known:
            what = f"'{node.op}' of {len(node.inputs)} inputs" if len(node.inputs) > 1 else f"'{node.op}'"
            return path, _nearest_layer(node), f"{what} between the layers does not keep channels"
        path.append(node)
        node = node.inputs[0]
    return path, node.layer, None


def _nearest_layer(node: Node) -> str | None:
    """The nearest tracked layer upstream of a node (breadth first), for naming a skipped pair."""
    queue, seen = [node], {id(node)}
    while queue:
        current = queue.pop(0)
        if current.layer is not None:
            return current.layer
        for parent in current.inputs:
            if id(parent) not in seen:
                seen.add(id(parent))
                queue.append(parent)
    return None


def _compose(path: list[Node], src: LayerWeight, dst: LayerWeight) -> Link | str:
    """Check the ops from ``src`` to ``dst`` keep ``src``'s channels; the Link, or why not."""
    n = src.channels_out
    bn = path[0].bn if path and path[0].op in BN_OPS else None
    flattened, positions = False, None
    for node in path:
        if node.op in PASS_OPS or node.op in BN_OPS:
            continue
        if flattened:
            return f"'{node.op}' after flattening '{src.name}'"
        step = _reshape_step(node, n, src.kind == CONV)
        if isinstance(step, str):
            return step
        flattened, positions = step
    need = int(dst.weight.shape[1])
    if dst.kind == CONV:
        if flattened or need != n:
            return f"channels do not compose: '{src.name}' gives {n}, '{dst.name}' takes {need} per group"
        return Link(src.name, dst.name, 1, False, bn)
    if flattened:
        positions = need // n if positions is None and need % n == 0 else positions
        if positions is None or need != n * positions:
            return f"'{dst.name}' takes {need} features, not a flatten of {n} channels"
        return Link(src.name, dst.name, positions, True, bn)
    shape = next((node.shape for node in reversed(path) if node.shape is not None), None)
    conv_unreduced = src.kind == CONV and (shape is None or len(shape) != 2)
    if need != n or conv_unreduced:
        return f"features do not compose: '{src.name}' gives {n} channels, '{dst.name}' takes {need}"
    return Link(src.name, dst.name, 1, False, bn)


def _reshape_step(node: Node, n: int, conv: bool) -> tuple[bool, int | None] | str:
    """(flattened now, positions) for a reshape or reduce op on a layer's output, or a reason."""
    before = node.inputs[0].shape
    after = node.shape
    if (before is None or after is None) and node.meta.get("dims") == (1, -1):
        return True, None  # TorchScript flatten(x, 1): channel-major; z follows from the next layer
    if before is None or after is None:
        return f"'{node.op}' of unknown shape between the layers"
    if not conv:
        return (False, None) if after[-1] == before[-1] == n else f"'{node.op}' changes the features"
    if len(before) < 2 or before[1] != n:
        return f"'{node.op}' on a tensor that is not (B, {n}, ...)"
    spatial = [d for d in before[2:]]
    if None in spatial:
        return f"'{node.op}' of unknown spatial shape"
    z = int(np.prod(spatial)) if spatial else 1
    if node.op in REDUCE_OPS:
        keeps = len(after) >= 2 and after[1] == n and all(d == 1 for d in after[2:])
        return (False, None) if keeps else f"'{node.op}' does not reduce to (B, {n})"
    if len(after) == 2 and after[1] == n * z:
        return True, z
    if len(after) >= 2 and after[1] == n and int(np.prod([d or 0 for d in after[2:]])) == z:
        return False, None
    return f"reshape '{node.op}' from {before[1:]} to {after[1:]} is not a channel-major flatten"
