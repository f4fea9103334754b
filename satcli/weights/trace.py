"""The data flow of a plain ``nn.Module``: one forward pass under a ``TorchFunctionMode`` plus module hooks.

Every torch function call records which earlier node produced each of its tensor arguments (parameters
and buffers are not data); hooks on the tracked layers record each call's input node and mark its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from satcli.errors import SatcliError, one_line
from satcli.taps import layer_kind
from satcli.weights.graph import Call, Node, Window, batch_norm_from, op_name, shape_of, window_of
from satcli.weights.matrices import BatchNorm, named_tensors


class _Recorder(TorchFunctionMode):
    """Records, for every torch function call, which earlier node produced each tensor argument."""

    def __init__(self, weights: set[int]) -> None:
        super().__init__()
        self.producer: dict[int, Node] = {}
        self.keep: list[object] = []
        self.weights = weights
        self.bn_names: dict[int, str] = {}

    def node_of(self, t: torch.Tensor) -> Node:
        return self.producer.get(id(t)) or Node("unknown", shape=shape_of(t))

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        data = [a for a in _tensors(args, kwargs) if id(a) not in self.weights]
        if not data:
            return out
        name = op_name(func)
        shape = shape_of(out if not isinstance(out, tuple) else out[0])
        node = Node(name, tuple(self.node_of(a) for a in data), shape, window=_window(name, args, kwargs))
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
        return batch_norm_from(label, [bound.get("weight"), var], bound.get("eps", 1e-5))


def _window(name: str, args: tuple, kwargs: dict[str, Any]) -> Window | None:
    """The sliding window of a conv / pooling call (the weight is the second argument of a convolution)."""
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    return window_of(name, args, kwargs, tuple(weight.shape) if isinstance(weight, torch.Tensor) else None)


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
                index = max(i for i, call in enumerate(calls) if call.layer == name)
                inner = rec.producer.get(id(value)) or calls[index].source
                node = Node("layer", (inner,), shape_of(value), layer=name)
                calls[index] = Call(name, calls[index].source, node)
                rec.producer[id(value)] = node
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


TOKENS = 16  # token count of the one forward pass of a text model


def token_vocab(module: nn.Module) -> int | None:
    """The vocabulary size of a Hugging Face text model (one fed token ids), else None."""
    config = getattr(module, "config", None)
    vocab = getattr(config, "vocab_size", None)
    if getattr(module, "main_input_name", None) != "input_ids" or not isinstance(vocab, int) or vocab < 1:
        return None
    return vocab


def trace_module(module: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> list[Call]:
    """Tracked layer calls of one forward pass on a batch of two random inputs of ``input_shape``."""
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else device
    x = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return _trace(module, x.to(device=device, dtype=dtype), {})


def trace_tokens(module: nn.Module, vocab: int, device: torch.device) -> list[Call]:
    """Tracked layer calls of one forward pass of a text model on (1, TOKENS) random token ids < ``vocab``."""
    param = next(iter(module.parameters()), None)
    ids = torch.randint(0, vocab, (1, TOKENS), generator=torch.Generator().manual_seed(0))
    ids = ids.to(param.device if param is not None else device)
    return _trace(module, ids, {"attention_mask": torch.ones_like(ids)})


def _trace(module: nn.Module, x: torch.Tensor, extra: dict[str, torch.Tensor]) -> list[Call]:
    weights = {id(t) for t in named_tensors(module).values()}
    rec = _Recorder(weights)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.running_var is not None:
            rec.bn_names[id(sub.running_var)] = name
    rec.producer[id(x)] = Node("input", shape=shape_of(x))
    for value in extra.values():
        rec.producer[id(value)] = Node("input", shape=shape_of(value))
    calls: list[Call] = []
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), _layer_hooks(module, rec, calls), rec:
            module(x, **extra)
    except SatcliError:
        raise
    except Exception as exc:
        raise SatcliError(
            f"one forward pass on an input of shape {tuple(x.shape)} failed: {one_line(exc, limit=2000)}"
        ) from None
    finally:
        module.train(was_training)
    return calls
