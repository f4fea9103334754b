"""Plain nn.Module taps: forward hooks, always removed; shape mismatches named by the layer that failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from satcli.errors import SatcliError, one_line
from satcli.taps.layers import (
    AffineInput,
    Inputs,
    Layer,
    Runner,
    Tap,
    affine_weights,
    call_model,
    describe_inputs,
    layer_kind,
    layout_hint,
)


def _expected_input(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = ", ".join(["H", "W", "D"][: len(module.kernel_size)])
        return f"(B, {module.in_channels}, {dims})"
    if isinstance(module, nn.Linear):
        return f"(B, ..., {module.in_features})"
    if isinstance(module, nn.RNNBase):
        return f"(B, T, {module.input_size})" if module.batch_first else f"(T, B, {module.input_size})"
    if layer_kind(module) is not None and hasattr(module, "nf"):  # transformers' Conv1D: weight (in, out)
        return f"(B, ..., {module.weight.shape[0]})"
    return None


def _shape_of(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, torch.Tensor):
            return str(tuple(a.shape))
    return "(no tensor)"


def _exact(x: torch.Tensor, out: torch.Tensor) -> bool:
    """True when an affine layer's input and output are float32/float64 (its forward did not run in half)."""
    return x.dtype in (torch.float32, torch.float64) and out.dtype in (torch.float32, torch.float64)


@contextmanager
def hook_taps(module: nn.Module, chosen: dict[str, Layer]) -> Iterator[Runner]:
    sinks: list[Tap] = []
    entered: list[tuple[str, nn.Module, str]] = []
    handles = []

    def pre_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            entered.append((name, mod, _shape_of(args)))

        return hook

    def post_hook(layer: Layer, affine: tuple[torch.Tensor, torch.Tensor | None] | None) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, tuple):  # LSTM/GRU: (output, hidden)
                out = out[0]
            if not isinstance(out, torch.Tensor):
                raise SatcliError(f"layer '{layer.name}' ({layer.type}) returned {type(out).__name__}, not a tensor")
            source = None
            # Not under autocast or a half-precision input: a forward that rounds that much is not x W + b.
            if affine is not None and len(args) == 1 and isinstance(args[0], torch.Tensor) and _exact(args[0], out):
                source = AffineInput(args[0].detach(), *affine)
            sinks[-1](layer, out.detach(), source)

        return hook

    try:
        for name, sub in module.named_modules():
            if name and _expected_input(sub) is not None:
                handles.append(sub.register_forward_pre_hook(pre_hook(name)))
            if name in chosen:
                handles.append(sub.register_forward_hook(post_hook(chosen[name], affine_weights(sub))))

        def run(x: Inputs, sink: Tap) -> None:
            entered.clear()
            sinks.append(sink)
            try:
                with torch.no_grad():
                    call_model(module, x)
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


def _mismatch(exc: Exception, x: Inputs, entered: list[tuple[str, nn.Module, str]]) -> SatcliError:
    reason = one_line(exc)
    if entered:
        name, mod, shape = entered[-1]
        expected = _expected_input(mod)
        return SatcliError(
            f"model and data do not fit: layer '{name}' ({type(mod).__name__}) expects input {expected} "
            f"but got {shape} (data batch {describe_inputs(x)}): {reason}{layout_hint(x)}"
        )
    return SatcliError(
        f"the forward pass failed on a data batch of shape {describe_inputs(x)}: {reason}{layout_hint(x)}"
    )
